"""SMTP settings: config.toml defaults, console values over them, the password encrypted at rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from twostep.config.loader import ConfigError, EmailConfig, load_config
from twostep.core.keyring import ENCRYPTED_SETTINGS, rotate_keys, secret_box
from twostep.core.models import Setting
from twostep.core.runtime import DEFINITIONS, SettingError, get_setting, set_setting, set_setting_from_text
from twostep.mail import config
from twostep.mail.base import MailDeliveryError

pytestmark = pytest.mark.django_db


@pytest.fixture
def reregister() -> Iterator[None]:
    """Lets a test call config.register() with patched defaults; the real definitions come back after."""
    saved = {key: DEFINITIONS[key] for key in config.KEYS}
    yield
    DEFINITIONS.update(saved)


def test_environment_configures_email(tmp_path: Path) -> None:
    """TWOSTEP_EMAIL__* variables fill the [email] section (how the live tests point a server at SMTP)."""
    loaded = load_config(
        tmp_path,
        {"TWOSTEP_EMAIL__HOST": "smtp.example.com", "TWOSTEP_EMAIL__SECURITY": "tls", "TWOSTEP_EMAIL__TIMEOUT": "1.5"},
    )
    assert (loaded.email.host, loaded.email.security, loaded.email.timeout) == ("smtp.example.com", "tls", 1.5)


def test_unbounded_timeout_is_refused(tmp_path: Path) -> None:
    """A delivery may not hold a request for more than a minute."""
    with pytest.raises(ConfigError, match=r"email\.timeout"):
        load_config(tmp_path, {"TWOSTEP_EMAIL__TIMEOUT": "600"})


def test_config_file_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch, reregister: None) -> None:
    """Without console values, the config file's settings (and password) are used."""
    monkeypatch.setattr(
        settings.CONFIG, "email", EmailConfig(host="smtp.file.example", port=2525, password="from-file", timeout=4)
    )
    config.register()  # defaults are read from the configuration at start-up
    current = config.current()
    assert (current.host, current.port, current.password, current.timeout) == (
        "smtp.file.example",
        2525,
        "from-file",
        4,
    )
    assert config.password_source() == "config"


def test_console_values_win_over_the_file(monkeypatch: pytest.MonkeyPatch, reregister: None) -> None:
    """Saved settings and a stored password take precedence over config.toml."""
    monkeypatch.setattr(settings.CONFIG, "email", EmailConfig(host="smtp.file.example", password="from-file"))
    config.register()
    config.save(host="smtp.console.example", port=465, security="tls", username="u", from_address="a@example.org")
    config.set_password("from-console")
    current = config.current()
    assert (current.host, current.port, current.security, current.password) == (
        "smtp.console.example",
        465,
        "tls",
        "from-console",
    )
    assert current.from_address == "a@example.org"
    config.clear_password()
    # config.toml's password is for config.toml's server, not the console's.
    with pytest.raises(MailDeliveryError, match=r"in config\.toml was given for smtp\.file\.example:587"):
        config.current()
    config.save(host="smtp.file.example", port=587, security="starttls", username="u", from_address="")
    assert config.current().password == "from-file"


@pytest.mark.parametrize(
    "moved",
    [{"host": "mx.attacker.example"}, {"port": 2525}, {"security": "none"}],
    ids=["host", "port", "plaintext"],
)
def test_stored_password_is_only_sent_to_its_server(moved: dict[str, object]) -> None:
    """Another host, port, or no encryption (however set: console, `settings set`, API): the password stays home.

    Stored passwords are never shown; sending them wherever email.host pointed let anyone
    who could change that setting (a stolen admin session, a personal admin token) collect one.
    """
    server = {"host": "smtp.corp.example", "port": 587, "security": "starttls"}
    config.save(**server, username="relay", from_address="")
    config.set_password("s3cret-relay-pw")
    assert config.current().password == "s3cret-relay-pw"
    for key, value in moved.items():
        set_setting(f"email.{key}", value)
    with pytest.raises(MailDeliveryError, match="only sent there") as refused:
        config.current()
    assert refused.value.smtp_error == "password for another server"
    assert "s3cret" not in str(refused.value)
    set_setting("email.username", "")  # no login: nothing to send, nothing refused
    assert config.current().password == ""
    config.save(**server, username="relay", from_address="")
    assert config.current().password == "s3cret-relay-pw"


def test_password_is_encrypted_at_rest_and_rotated_with_the_keys() -> None:
    """The stored value is a SecretBox token, not the password, and `keys rotate` re-encrypts it."""
    config.set_password("correct horse smtp")
    token = Setting.objects.get(key=config.PASSWORD_KEY).value
    assert "correct horse smtp" not in token
    assert config.PASSWORD_KEY in ENCRYPTED_SETTINGS
    rotate_keys()
    rotated = Setting.objects.get(key=config.PASSWORD_KEY).value
    assert rotated != token
    assert config.current().password == "correct horse smtp"


def test_password_is_not_a_plain_runtime_setting() -> None:
    """`twostep settings set email.password` cannot store it in clear text."""
    with pytest.raises(SettingError, match="twostep email set-password"):
        set_setting_from_text(config.PASSWORD_KEY, "secret")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("email.port", "0", "port number"),
        ("email.port", "smtp", "not a port number"),
        ("email.security", "ssl", "starttls, tls, none"),
        ("email.host", "smtp.example.com/evil", "not a host name"),
        ("email.from_address", "not an address", "not an email address"),
        ("email.from_address", "a@example.com\nBcc: x@example.com", "on one line"),
    ],
)
def test_invalid_values_are_refused(key: str, value: str, message: str) -> None:
    """Bad input is refused with a message naming the problem; nothing is stored."""
    before = get_setting(key)
    with pytest.raises(SettingError, match=message):
        set_setting_from_text(key, value)
    assert get_setting(key) == before


def test_default_from_address_uses_the_public_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no From address set, mail comes from twostep@<public host name>."""
    monkeypatch.setattr(settings.CONFIG.server, "public_url", "https://login.example.com")
    assert config.default_from_address() == "twostep@login.example.com"
    monkeypatch.setattr(settings.CONFIG.server, "public_url", "http://127.0.0.1:8000")
    assert config.default_from_address() == "twostep@localhost"


def test_password_stored_before_binding_keeps_working_after_the_upgrade() -> None:
    """A password stored without its server is bound, by the migration, to the server named at the upgrade."""
    from importlib import import_module

    from django.apps import apps

    config.save(host="smtp.corp.example", port=587, security="starttls", username="relay", from_address="")
    Setting.objects.create(key=config.PASSWORD_KEY, value=secret_box().encrypt("old-style"))
    migration = import_module("twostep.core.migrations.0002_smtp_password_bound_to_server")
    migration.bind_to_current_server(apps, None)
    migration.bind_to_current_server(apps, None)  # once bound, left alone
    assert config.current().password == "old-style"
    set_setting("email.host", "mx.attacker.example")
    with pytest.raises(MailDeliveryError, match="only sent there"):
        config.current()
