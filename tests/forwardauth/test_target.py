"""Reading the original request from nginx's and Traefik/Caddy's headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twostep.forwardauth.target import MAX_URL_LENGTH, RefusedTarget, Style, Target, from_forwarded, from_original_url


def test_nginx_original_url() -> None:
    """X-Original-URL gives the URL, the host without port, the raw path and the 401 style."""
    target = from_original_url({"X-Original-URL": "https://App.Example.com:8443/wiki/a%20b?x=1&y=2"})
    assert target is not None
    assert target.url == "https://app.example.com:8443/wiki/a%20b?x=1&y=2"
    assert (target.host, target.path, target.style) == ("app.example.com", "/wiki/a%20b", Style.AUTH_REQUEST)


def test_traefik_and_caddy_forwarded_headers() -> None:
    """X-Forwarded-Proto/Host/Uri give the same, in the 302 style."""
    target = from_forwarded(
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/x?next=1"}
    )
    assert target is not None
    assert (target.url, target.host, target.path, target.style) == (
        "https://app.example.com/x?next=1",
        "app.example.com",
        "/x",
        Style.FORWARD,
    )


def test_each_convention_ignores_the_other() -> None:
    """The nginx reader never looks at X-Forwarded-*, the Traefik/Caddy reader never at X-Original-URL."""
    assert from_original_url({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example.com"}) is None
    assert from_forwarded({"X-Original-URL": "https://a.example.com/"}) is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Original-URL": "ftp://app.example.com/"},
        {"X-Original-URL": "/relative/only"},
        {"X-Original-URL": "https://user:pw@app.example.com/"},
        {"X-Original-URL": "https://app.example.com:port/"},
        {"X-Original-URL": "https://[::1/"},
        {"X-Original-URL": "https://bad_host!.example.com/"},
        {"X-Original-URL": "https://app.example.com/a b"},
        {"X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Uri": "/"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example.com, b.example.com", "X-Forwarded-Uri": "/"},
        {"X-Forwarded-Proto": "https,http", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "evil.com/x"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/a\r\nSet-Cookie: x"},
    ],
)
def test_missing_or_malformed_headers_give_no_target(headers: dict[str, str]) -> None:
    """Anything incomplete, ambiguous or malformed is not guessed at: no target, so the request is denied."""
    assert from_original_url(headers) is None
    assert from_forwarded(headers) is None


def test_backslash_in_the_query_is_an_ordinary_character() -> None:
    """?q=a\\b is a legitimate query: a target whose URL (the ``next`` after sign-in) carries it escaped."""
    nginx = from_original_url({"X-Original-URL": "https://wiki.example.com/x?q=a\\b&r=\\"})
    caddy = from_forwarded(
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "wiki.example.com", "X-Forwarded-Uri": "/x?q=a\\b&r=\\"}
    )
    for target in (nginx, caddy):
        assert target is not None
        assert (target.url, target.host, target.path) == (
            "https://wiki.example.com/x?q=a%5Cb&r=%5C",
            "wiki.example.com",
            "/x",
        )


@pytest.mark.parametrize("path", ["/a\\b", "/x\\..\\admin?q=1", "/\\evil.com/"])
def test_backslash_in_the_path_is_refused_with_a_reason(path: str) -> None:
    """A backslash in the path (read as / by some applications) is refused as such, not taken for a broken proxy."""
    requests = (
        lambda: from_original_url({"X-Original-URL": f"https://App.example.com:8443{path}"}),
        lambda: from_forwarded(
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "App.example.com:8443", "X-Forwarded-Uri": path}
        ),
    )
    for read in requests:
        with pytest.raises(RefusedTarget, match="backslash") as refused:
            read()
        assert refused.value.host == "app.example.com"


def test_path_starting_with_two_slashes_stays_on_the_host() -> None:
    """A URI of //evil.com/x is a path on the app's host, never another host in the rebuilt URL."""
    target = from_forwarded(
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "//evil.com/x"}
    )
    assert target is not None
    assert target.url == "https://app.example.com//evil.com/x" and target.host == "app.example.com"


def test_very_long_url_is_cut_to_the_origin() -> None:
    """A URL too long to carry in ?next= is replaced by the app's home page."""
    target = from_original_url({"X-Original-URL": "https://app.example.com/" + "a" * MAX_URL_LENGTH})
    assert target is not None and target.url == "https://app.example.com/"
    assert target.path.startswith("/aaa")


@given(
    st.dictionaries(
        st.sampled_from(["X-Original-URL", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Uri"]),
        st.text(max_size=80),
    )
)
def test_arbitrary_headers_never_raise(headers: dict[str, str]) -> None:
    """Whatever a proxy sends, the parser answers a target, None or a refusal, and a target's URL is on its host."""
    for read in (from_original_url, from_forwarded):
        target: Target | None
        try:
            target = read(headers)
        except RefusedTarget:
            continue
        if target is not None:
            assert target.url.startswith(("http://", "https://"))
            assert target.url.split("/")[2].split(":")[0] == target.host
