"""database.url: read as libpq reads it, refused at load when it cannot work, never shown with its password."""

from __future__ import annotations

from pathlib import Path

import pytest

import twostep.settings
from twostep.config import ConfigError, load_config
from twostep.config.database import redact_url

SECRET = "S3cretDBpass"


def django_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> dict[str, object]:
    """DATABASES["default"] as twostep.settings builds it for ``url``."""
    monkeypatch.setattr(twostep.settings, "CONFIG", load_config(tmp_path, {"TWOSTEP_DATABASE__URL": url}))
    return twostep.settings._database()


def test_query_parameters_reach_the_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """sslmode, sslrootcert and any other libpq parameter go to psycopg; a URL's connect_timeout wins."""
    database = django_database(
        monkeypatch,
        tmp_path,
        "postgresql://twostep@db.internal:6432/auth?sslmode=verify-full&sslrootcert=/etc/twostep/ca%20bundle.pem"
        "&application_name=twostep-1&connect_timeout=9",
    )
    assert database["OPTIONS"] == {
        "connect_timeout": "9",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/twostep/ca bundle.pem",
        "application_name": "twostep-1",
    }
    assert (database["NAME"], database["USER"], database["HOST"], database["PORT"]) == (
        "auth",
        "twostep",
        "db.internal",
        "6432",
    )
    # twostep's own connection settings stay.
    assert database["CONN_MAX_AGE"] == 600 and database["CONN_HEALTH_CHECKS"] is True
    plain = django_database(monkeypatch, tmp_path, "postgresql://twostep@db.internal/auth")
    assert plain["OPTIONS"] == {"connect_timeout": 5}
    assert plain["PORT"] == ""


def test_user_password_and_name_are_percent_decoded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An '@', '/' or ':' written percent-encoded reaches PostgreSQL as the character itself."""
    database = django_database(monkeypatch, tmp_path, "postgresql://ops%40x:p%2Fw%3Ad%40@host/my%20db")
    assert (database["USER"], database["PASSWORD"], database["NAME"]) == ("ops@x", "p/w:d@", "my db")


def test_several_hosts_and_a_socket_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What libpq accepts works: a list of hosts (with target_session_attrs), or a Unix socket directory."""
    database = django_database(
        monkeypatch, tmp_path, "postgresql://u@db1:5432,db2:5433/auth?target_session_attrs=read-write"
    )
    assert (database["HOST"], database["PORT"]) == ("db1,db2", "5432,5433")
    assert database["OPTIONS"] == {"connect_timeout": 5, "target_session_attrs": "read-write"}
    socket = django_database(monkeypatch, tmp_path, "postgresql://u@%2Fvar%2Frun%2Fpostgresql/auth")
    assert socket["HOST"] == "/var/run/postgresql"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresq://twostep:{SECRET}@db.internal/twostep", "unknown scheme 'postgresq://'"),
        (f"mysql://twostep:{SECRET}@db.internal/twostep", "only postgresql:// URLs"),
        (f"twostep:{SECRET}@db.internal/twostep", "not a URL"),
        (f"postgresql://twostep:{SECRET}@db.internal:5432/", "names no database"),
        (f"postgresql://twostep:{SECRET}@db.internal:5432", "names no database"),
        (f"postgresql://twostep:{SECRET}@db.internal:54x2/twostep", 'port "54x2" is not a number'),
        (f"postgresql://twostep:{SECRET}@db.internal:99999/twostep", 'port "99999" is not a number'),
        (
            f"postgresql://twostep:{SECRET}@db.internal/twostep?ssl_mode=require",
            'invalid URI query parameter: "ssl_mode"',
        ),
        (f"postgresql://twostep:{SECRET}@db.internal/twostep?sslmode=requir", 'sslmode "requir" is not one of'),
        (f"postgresql://twostep:{SECRET}@db.internal/twostep?connect_timeout=soon", "connect_timeout"),
        (f"postgresql://twostep:{SECRET}%zz@db.internal/twostep", "invalid percent-encoded token"),
        ("postgresql://twostep:S3cret/DBpass@db.internal/twostep", "must be percent-encoded"),
        ("postgresql://twostep:S3cret@DBpass@db.internal/twostep", "must be percent-encoded"),
    ],
)
def test_unusable_urls_are_refused_without_the_password(tmp_path: Path, url: str, message: str) -> None:
    """Each is refused at load with the key and the reason; no part of the password is shown."""
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, {"TWOSTEP_DATABASE__URL": url})
    text = str(refused.value)
    assert "database.url = " in text and message in text
    for part in (SECRET, "S3cret", "DBpass"):
        assert part not in text


def test_url_in_the_config_file_is_redacted_too(tmp_path: Path) -> None:
    """The file's URL is checked and shown the same way."""
    (tmp_path / "config.toml").write_text(f'[database]\nurl = "postgres://twostep:{SECRET}@db:5432"\n')
    with pytest.raises(ConfigError, match=r"database\.url = 'postgres://twostep:\*\*\*@db:5432'.*names no database"):
        load_config(tmp_path, {})


def test_database_section_given_as_json_is_not_echoed(tmp_path: Path) -> None:
    """TWOSTEP_DATABASE='{...}' with a wrong key: the section's value (holding the URL) is not printed."""
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, {"TWOSTEP_DATABASE": f'{{"url": "postgresql://u:{SECRET}@h/x", "port": 1}}'})
    assert "database.port: unknown key" in str(refused.value) and SECRET not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://twostep:{SECRET}@db:5432/x", "postgresql://twostep:***@db:5432/x"),
        (f"postgresq://twostep:{SECRET}@db/x", "postgresq://twostep:***@db/x"),
        ("postgresql://twostep@db/x", "postgresql://twostep@db/x"),
        (f"postgresql://twostep:a@{SECRET}@db/x", "postgresql://twostep:***@db/x"),
        (
            f"postgresql://twostep@db/x?sslmode=require&password={SECRET}",
            "postgresql://twostep@db/x?sslmode=require&password=***",
        ),
        (f"twostep:{SECRET}@db/x", "twostep:***@db/x"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    """The password, however the URL is malformed, becomes ***; the rest stays to recognise the URL."""
    assert redact_url(url) == shown
