"""Rule matching: hosts, path prefixes, order, default deny, and paths spelled to dodge a rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.forwardauth.conftest import RULES
from twostep.config.loader import ForwardAuthConfig, ForwardAuthRule
from twostep.forwardauth.rules import Decision, allows_destination, decide, host_matches, path_matches, path_readings

ALLOW, SIGN_IN, FORBID = Decision.ALLOW, Decision.SIGN_IN, Decision.FORBID


def rules(items: list[dict[str, Any]] | None = None) -> list[ForwardAuthRule]:
    return ForwardAuthConfig.model_validate({"rules": RULES if items is None else items}).rules


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("app.example.com", "app.example.com", True),
        ("app.example.com", "app.example.com.evil.com", False),
        ("app.example.com", "evilapp.example.com", False),
        ("app.example.com", "x.app.example.com", False),
        ("*.example.com", "app.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "badexample.com", False),
        ("*.example.com", "example.com.evil.com", False),
    ],
)
def test_host_patterns(pattern: str, host: str, expected: bool) -> None:
    """Exact hosts match only themselves; *.domain matches strictly below domain, never look-alikes."""
    assert host_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("/", "/anything/at/all", True),
        ("/wiki", "/wiki", True),
        ("/wiki", "/wiki/", True),
        ("/wiki", "/wiki/page", True),
        ("/wiki", "/wikipedia", False),
        ("/wiki", "/", False),
        ("/wiki", "/WIKI/Page", True),
        ("/Wiki", "/wiki", True),
        ("/Wiki", "/wIKIPEDIA", False),
    ],
)
def test_path_prefix_respects_segments(prefix: str, path: str, expected: bool) -> None:
    """A prefix covers itself and what is below it, whatever the case, not a longer segment that starts the same way."""
    assert path_matches(prefix, path) is expected


def test_signed_in_policy() -> None:
    """signed_in lets any role in and asks anonymous visitors to sign in."""
    assert decide(rules(), "wiki.example.com", "/page", "user") is ALLOW
    assert decide(rules(), "wiki.example.com", "/page", "admin") is ALLOW
    assert decide(rules(), "wiki.example.com", "/page", None) is SIGN_IN


def test_role_policy() -> None:
    """A role list lets in only those roles; others are forbidden, anonymous visitors must sign in."""
    assert decide(rules(), "grafana.example.com", "/admin/users", "admin") is ALLOW
    assert decide(rules(), "grafana.example.com", "/admin/users", "user") is FORBID
    assert decide(rules(), "grafana.example.com", "/admin", None) is SIGN_IN


def test_first_matching_rule_wins() -> None:
    """Rules are checked in order: the admin rule above the catch-all decides /admin."""
    assert decide(rules(), "grafana.example.com", "/dashboards", "user") is ALLOW
    reordered = rules([RULES[2], RULES[1]])
    assert decide(reordered, "grafana.example.com", "/admin", "user") is ALLOW


def test_deny_and_default_deny() -> None:
    """A deny rule, and a host or path that no rule names, are forbidden to everyone, signed in or not."""
    for role in (None, "user", "admin"):
        assert decide(rules(), "closed.example.com", "/", role) is FORBID
        assert decide(rules(), "unknown.example.com", "/", role) is FORBID
    assert (
        decide(
            rules([{"host": "a.example.com", "path_prefix": "/open", "policy": "signed_in"}]),
            "a.example.com",
            "/other",
            "admin",
        )
        is FORBID
    )
    assert decide([], "wiki.example.com", "/", "admin") is FORBID


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "//admin",
        "/./admin",
        "/x/../admin",
        "/x/%2e%2e/admin",
        "/x%2f..%2fadmin",
        "/%61dmin",
        "/%2561dmin",
        "/x\\..\\admin",
        "/x/..%5cadmin",
        "/admin;jsessionid=1",
        "/ADMIN",
        "/Admin/users",
        "/../../admin/",
        "/admin%00",
        "/admin%00.html",
        "/admin%0a",
        "/admin%09/users",
        "/admin.",
        "/admin%20/users",
        "/admin../users",
    ],
)
def test_spellings_of_a_protected_path_cannot_dodge_it(path: str) -> None:
    """Dot segments, repeated slashes, percent-encoding, backslashes, ;params and case all reach the admin rule."""
    assert decide(rules(), "grafana.example.com", path, "user") is FORBID


def test_control_characters_are_refused_everywhere() -> None:
    """A NUL, tab or line break, however encoded, is refused even under an open rule: apps disagree on where the path ends."""
    items = [{"host": "app.example.com", "policy": "signed_in"}]
    for path in ("/ok%00", "/ok\x00", "/a%0d%0ab", "/%2500"):
        assert decide(rules(items), "app.example.com", path, "admin") is FORBID, path
    assert decide(rules(items), "app.example.com", "/ok", "admin") is ALLOW


def test_dodging_a_deny_rule_fails() -> None:
    """A deny path above an allowed catch-all stays denied however it is spelled."""
    items = [
        {"host": "app.example.com", "path_prefix": "/internal", "policy": "deny"},
        {"host": "app.example.com", "policy": "signed_in"},
    ]
    for path in ("/internal", "/public/../internal", "/public/%2e%2e/internal/x", "//internal", "/Internal"):
        assert decide(rules(items), "app.example.com", path, "admin") is FORBID, path
    assert decide(rules(items), "app.example.com", "/public/internal", "admin") is ALLOW


@pytest.mark.parametrize(
    "path",
    [
        "/Private/x",
        "/private/x",
        "/PRIVATE/x",
        "/pRiVaTe",
        "/%50rivate/x",
        "/%70RIVATE/x",
        "/%2570rivate/x",
        "/x/..%2FPRIVATE/y",
        "/x/%2E%2E/Pr%49vate",
    ],
)
def test_a_capitalised_deny_prefix_covers_every_case(path: str) -> None:
    """A /Private deny rule above an allowed catch-all denies /private and /PRIVATE too, percent-encoded or not.

    Applications that ignore case serve all of them as the same page; only the exact spelling was denied.
    """
    items = [
        {"host": "app.example.com", "path_prefix": "/Private", "policy": "deny"},
        {"host": "app.example.com", "policy": "signed_in"},
    ]
    assert decide(rules(items), "app.example.com", path, "admin") is FORBID
    assert decide(rules(items), "app.example.com", "/public/x", "admin") is ALLOW


@pytest.mark.parametrize("path", ["/Docs", "/docs", "/DOCS/intro", "/dOcS/"])
def test_a_capitalised_allow_prefix_lets_users_in(path: str) -> None:
    """A lone /Docs signed_in rule opens /Docs (it used to forbid it to everyone) and every other case of it."""
    items = [{"host": "app.example.com", "path_prefix": "/Docs", "policy": "signed_in"}]
    assert decide(rules(items), "app.example.com", path, "user") is ALLOW
    assert decide(rules(items), "app.example.com", path, None) is SIGN_IN
    assert decide(rules(items), "app.example.com", "/Docsx", "user") is FORBID


def test_non_ascii_prefixes_ignore_case_too() -> None:
    """/Ärger covers /ärger and its percent-encoded UTF-8 spelling."""
    items = [
        {"host": "app.example.com", "path_prefix": "/Ärger", "policy": "deny"},
        {"host": "app.example.com", "policy": "signed_in"},
    ]
    for path in ("/ärger", "/%C3%A4rger/x", "/%c3%84RGER"):
        assert decide(rules(items), "app.example.com", path, "admin") is FORBID, path


ADMIN_BEHIND = [
    {"host": "app.example.test", "path_prefix": "/admin", "policy": ["admin"]},
    {"host": "app.example.test", "policy": "signed_in"},
]


@pytest.mark.parametrize(
    "path",
    [
        "/admin%2f%5c..",  # nginx: $uri /admin/\.. reaches its /admin/ location
        "/%61dmin/users%2f%5c..%2f%5c..",
        "/admin/..",  # passed on raw (Caddy): an application that keeps dot segments routes it under /admin
        "/%61dmin/users;%2f..%2f..",  # Tomcat, Spring: ;parameters dropped first, then decoded
        "/%61dmin;%2f..",
        "/;%5c.x%2fadmin",
        "/admin%5c%255c//%2e%2e",
    ],
)
def test_no_spelling_of_a_role_rule_lets_another_role_through(path: str) -> None:
    """Each spelling that reached an administrators-only path for a user (through nginx, Caddy, or as
    Java servers read ``;``) is refused."""
    assert decide(rules(ADMIN_BEHIND), "app.example.test", path, "user") is FORBID
    assert decide(rules(ADMIN_BEHIND), "app.example.test", path, "admin") is ALLOW


@pytest.mark.parametrize("path", ["/", "/dashboard", "/d/team%2Fboard", "/files/report.pdf", "/a;jsessionid=1/b"])
def test_ordinary_paths_still_pass(path: str) -> None:
    assert decide(rules(ADMIN_BEHIND), "app.example.test", path, "user") is ALLOW


def test_readings_cover_raw_and_decoded_paths() -> None:
    """An encoded slash is read both as part of a segment and as a separator."""
    readings = path_readings("/a%2Fb/../c")
    assert "/c" in readings  # %2F kept: "a%2Fb" is one segment that ".." removes
    assert "/a/c" in readings  # %2F decoded: ".." removes only "b"


def test_destinations_are_hosts_of_rules_that_can_allow() -> None:
    """After sign-in the browser may return to hosts of allow/role rules, not to deny-only or unknown hosts."""
    assert allows_destination(rules(), "wiki.example.com")
    assert allows_destination(rules(), "grafana.example.com")
    assert not allows_destination(rules(), "closed.example.com")
    assert not allows_destination(rules(), "evil.com")
    assert not allows_destination(rules(), "wiki.example.com.evil.com")


@given(st.text(max_size=200))
def test_readings_never_fail(path: str) -> None:
    """Any path text gives readings that start with a single slash, one of them with no dot segments;
    or none at all, and then the path is refused."""
    readings = path_readings(path)
    if readings is None:
        assert decide(rules(), "wiki.example.com", path, "admin") is FORBID
        return
    for reading in readings:
        assert reading.startswith("/") and not reading.startswith("//") and "//" not in reading
    assert any("/../" not in reading + "/" and "/./" not in reading + "/" for reading in readings)
