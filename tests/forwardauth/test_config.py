"""The [forward_auth] section: rules, validation messages, environment overrides, cookie domain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from twostep.accounts.models import Role
from twostep.config import ConfigError, load_config
from twostep.config.loader import FORWARD_AUTH_ROLES, ForwardAuthConfig

SRC = Path(__file__).resolve().parents[2] / "src"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "config.toml").write_text(text)
    return tmp_path


def test_rules_from_the_file(tmp_path: Path) -> None:
    """[[forward_auth.rules]] tables load in order, hosts and prefixes lower-cased, prefixes without a trailing slash."""
    write(
        tmp_path,
        '[forward_auth]\nsession_cookie_domain = ".Example.com"\n'
        '[[forward_auth.rules]]\nhost = "Grafana.Example.com."\npath_prefix = "/Admin/"\npolicy = ["admin"]\n'
        '[[forward_auth.rules]]\nhost = "*.example.com"\npolicy = "signed_in"\n',
    )
    config = load_config(tmp_path, {}).forward_auth
    assert [(r.host, r.path_prefix, r.policy) for r in config.rules] == [
        ("grafana.example.com", "/admin", ["admin"]),
        ("*.example.com", "/", "signed_in"),
    ]
    assert config.session_cookie_domain == "example.com"


def test_rules_from_the_environment(tmp_path: Path) -> None:
    """TWOSTEP_FORWARD_AUTH__RULES takes a JSON list and replaces the file's rules."""
    write(tmp_path, '[[forward_auth.rules]]\nhost = "old.example.com"\npolicy = "deny"\n')
    rules = [{"host": "app.example.com", "policy": "signed_in"}]
    config = load_config(tmp_path, {"TWOSTEP_FORWARD_AUTH__RULES": json.dumps(rules)})
    assert [r.host for r in config.forward_auth.rules] == ["app.example.com"]


def test_no_rules_by_default(tmp_path: Path) -> None:
    """Without configuration there are no rules (so everything is denied) and no shared cookie."""
    config = load_config(tmp_path, {}).forward_auth
    assert config.rules == [] and config.session_cookie_domain == ""


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"host": "app.example.com", "policy": "admin"}, r"policy = 'admin': .*list of roles"),
        ({"host": "app.example.com", "policy": ["root"]}, r"roles must be a non-empty list of admin, user"),
        ({"host": "app.example.com", "policy": []}, r"roles must be a non-empty list"),
        ({"host": "*", "policy": "signed_in"}, r"host = '\*': Value error, must be a host name"),
        ({"host": "*.com", "policy": "signed_in"}, r"wildcard needs at least two labels"),
        ({"host": "https://app.example.com", "policy": "signed_in"}, r"must be a host name"),
        ({"host": "app.example.com", "path_prefix": "wiki", "policy": "deny"}, r"path_prefix = 'wiki'"),
        ({"host": "app.example.com", "path_prefix": "/a?b", "policy": "deny"}, r"no query"),
        ({"host": "app.example.com", "path_prefix": "/my%20docs", "policy": "deny"}, r"decoded \(a space, not %20\)"),
        ({"host": "app.example.com", "path_prefix": "/a//b", "policy": "deny"}, r"path_prefix = '/a//b'"),
        ({"host": "app.example.com", "path_prefix": "/c/./d", "policy": "deny"}, r"\. and \.\. segments"),
        ({"host": "app.example.com", "path_prefix": "/c/../d", "policy": "deny"}, r"\. and \.\. segments"),
        ({"host": "app.example.com", "path_prefix": "/e;x", "policy": "deny"}, r"without ;parameters"),
        ({"host": "app.example.com"}, r"rules\.0\.policy: missing \(a required key\)"),
        ({"host": "app.example.com", "policy": "deny", "methods": ["GET"]}, r"methods: unknown key"),
    ],
)
def test_bad_rules_name_the_key(tmp_path: Path, rule: dict[str, object], message: str) -> None:
    """A wrong rule fails loading with the key, the value and what is expected."""
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, {"TWOSTEP_FORWARD_AUTH__RULES": json.dumps([rule])})


def test_roles_match_the_user_model() -> None:
    """The roles a rule may name are exactly the roles users can have."""
    assert set(FORWARD_AUTH_ROLES) == set(Role.values)


def test_cookie_domain_must_contain_twostep() -> None:
    """A cookie domain that twostep's own host is not inside is refused (browsers would drop the cookie)."""
    config = ForwardAuthConfig(session_cookie_domain="example.com")
    assert config.cookie_domain_for("login.example.com") == "example.com"
    assert config.cookie_domain_for("example.com") == "example.com"
    with pytest.raises(ConfigError, match="not inside it"):
        config.cookie_domain_for("login.example.org")
    with pytest.raises(ConfigError, match="not inside it"):
        config.cookie_domain_for("notexample.com")
    assert ForwardAuthConfig().cookie_domain_for("login.example.com") is None


@pytest.mark.parametrize("domain", ["com", "exa mple.com", "*.example.com", "example.com/x"])
def test_bad_cookie_domain_refused(tmp_path: Path, domain: str) -> None:
    """A top-level or malformed cookie domain is refused."""
    with pytest.raises(ConfigError, match="session_cookie_domain"):
        load_config(tmp_path, {"TWOSTEP_FORWARD_AUTH__SESSION_COOKIE_DOMAIN": domain})


def django_cookie_settings(tmp_path: Path, **env: str) -> dict[str, object]:
    """Import twostep.settings in a fresh interpreter with ``env`` and return its cookie settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWOSTEP_")}
    clean.update({"TWOSTEP_DATA_DIR": str(tmp_path), "PYTHONPATH": str(SRC), **env})
    script = (
        "import json, twostep.settings as s;"
        "print(json.dumps([s.SESSION_COOKIE_NAME, s.SESSION_COOKIE_DOMAIN, s.CSRF_COOKIE_NAME,"
        " s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action'], s.ALLOWED_HOSTS]))"
    )
    result = subprocess.run([sys.executable, "-c", script], env=clean, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    name, domain, csrf, form_action, hosts = json.loads(result.stdout)
    return {"name": name, "domain": domain, "csrf": csrf, "form_action": form_action, "hosts": hosts}


def test_shared_cookie_over_https_uses_secure_prefix(tmp_path: Path) -> None:
    """Over https with a cookie domain: __Secure- session cookie on the domain; the CSRF cookie stays __Host-."""
    cookies = django_cookie_settings(
        tmp_path,
        TWOSTEP_SERVER__PUBLIC_URL="https://login.example.com",
        TWOSTEP_FORWARD_AUTH__SESSION_COOKIE_DOMAIN="example.com",
        TWOSTEP_FORWARD_AUTH__INTERNAL_HOSTS='["twostep"]',
        TWOSTEP_FORWARD_AUTH__RULES=json.dumps(
            [{"host": "wiki.example.com", "policy": "signed_in"}, {"host": "x.example.com", "policy": "deny"}]
        ),
    )
    assert cookies["name"] == "__Secure-twostep_session"
    assert cookies["domain"] == "example.com"
    assert cookies["csrf"] == "__Host-twostep_csrf"
    # Forms may be followed back to protected apps, not to deny-only hosts.
    assert cookies["form_action"] == ["'self'", "wiki.example.com:*"]
    # The proxy may call /auth/forward under its internal name (Traefik: the forwardAuth address).
    assert "twostep" in cookies["hosts"] and "login.example.com" in cookies["hosts"]


def test_host_only_cookie_by_default(tmp_path: Path) -> None:
    """Without a cookie domain the session cookie keeps the __Host- prefix and no Domain (SES-03)."""
    cookies = django_cookie_settings(tmp_path, TWOSTEP_SERVER__PUBLIC_URL="https://login.example.com")
    assert cookies["name"] == "__Host-twostep_session"
    assert cookies["domain"] is None
    assert cookies["form_action"] == ["'self'"]
    assert "twostep" not in cookies["hosts"]


def test_cookie_domain_outside_public_url_stops_start_up(tmp_path: Path) -> None:
    """twostep refuses to start when public_url's host is outside the cookie domain."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWOSTEP_") and k != "DJANGO_SETTINGS_MODULE"}
    clean.update(
        {
            "TWOSTEP_DATA_DIR": str(tmp_path),
            "PYTHONPATH": str(SRC),
            "TWOSTEP_SERVER__PUBLIC_URL": "https://login.example.org",
            "TWOSTEP_FORWARD_AUTH__SESSION_COOKIE_DOMAIN": "example.com",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "twostep.cli", "settings", "show"], env=clean, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "session_cookie_domain" in result.stderr and "login.example.org" in result.stderr


def test_bad_internal_host_refused(tmp_path: Path) -> None:
    """internal_hosts takes plain host names only (no wildcard, no URL)."""
    for value in ('["*.example.com"]', '["http://twostep"]'):
        with pytest.raises(ConfigError, match="internal_hosts"):
            load_config(tmp_path, {"TWOSTEP_FORWARD_AUTH__INTERNAL_HOSTS": value})
