"""The effective SMTP settings: console values (database) over ``[email]`` in config.toml.

Host, port, security, username and from address are runtime settings
(``email.host`` ...), so ``twostep settings show|set`` and every instance see
them; their defaults are the config file's values.  The password is stored
encrypted with the service's keys under ``email.password`` (rotated by
``twostep keys rotate``) and is write-only: nothing ever displays it.
Timeout and certificate checks come only from the config file.

A password is only ever sent to the server it was given for: the stored one
is kept with the host, port and connection security it was entered with, the
config file's goes with the config file's server.  Pointing ``email.host``
elsewhere (from the console, ``settings set`` or the API) therefore cannot
make twostep hand the password to another machine, nor send it unencrypted
after the security was switched to ``none``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from twostep.core.crypto import DecryptionError, KeyFileError
from twostep.core.keyring import register_encrypted_setting, secret_box
from twostep.core.models import Setting
from twostep.core.runtime import (
    Definition,
    SettingError,
    get_settings,
    register_method_requirement,
    register_set_elsewhere,
    register_setting,
    set_setting,
)
from twostep.mail.base import MailDeliveryError
from twostep.mail.smtp import SECURITY_CHOICES, SmtpSettings, resolve_ca_file

HOST, PORT, SECURITY, USERNAME, FROM_ADDRESS = (
    "email.host",
    "email.port",
    "email.security",
    "email.username",
    "email.from_address",
)
KEYS = (HOST, PORT, SECURITY, USERNAME, FROM_ADDRESS)
PASSWORD_KEY = "email.password"  # noqa: S105 - a settings key, not a password


def _text(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise SettingError(f"{what} must be text")
    text = value.strip()
    if not text.isprintable():
        raise SettingError(f"{what} must be on one line, without control characters")
    if len(text) > max_length:
        raise SettingError(f"{what} must be at most {max_length} characters")
    return text


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def check_host(value: Any) -> str:
    host = _text(value, "the SMTP host", 253)
    if not host:
        return ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host):
        raise SettingError(f"{host!r} is not a host name such as smtp.example.com")
    return host


#: What stops working without outgoing mail, registered by the apps that
#: send it: each returns why the SMTP server cannot be removed now (the
#: feature is on), or None.
MAIL_DEPENDENTS: dict[str, Callable[[], str | None]] = {}


def register_mail_dependent(feature: str, in_use: Callable[[], str | None]) -> None:
    """Refuse to clear ``email.host`` while ``in_use()`` returns a reason."""
    MAIL_DEPENDENTS[feature] = in_use


def _email_codes_in_use() -> str | None:
    if "email" not in get_settings("two_factor.methods")["two_factor.methods"]:
        return None
    return (
        "Email codes are an allowed sign-in method: remove email from the allowed methods on the "
        "Authentication page (/admin/authentication) before removing the SMTP server."
    )


def _check_host_setting(value: Any) -> str:
    # Removing the server while a sign-in method needs it would lock out
    # everyone who signs in with an emailed code; refuse, as SMS does.
    host = check_host(value)
    if not host:
        for in_use in MAIL_DEPENDENTS.values():
            reason = in_use()
            if reason:
                raise SettingError(reason)
    return host


def _check_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise SettingError(f"{value!r} is not a port number from 1 to 65535")
    return value


def _parse_port(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise SettingError(f"{text!r} is not a port number") from None


def _check_security(value: Any) -> str:
    if value not in SECURITY_CHOICES:
        raise SettingError(f"{value!r} is not one of {', '.join(SECURITY_CHOICES)}")
    return str(value)


def check_username(value: Any) -> str:
    return _text(value, "the SMTP username", 254)


def check_from_address(value: Any) -> str:
    """``""`` or ``address`` or ``Name <address>``; raises SettingError otherwise."""
    text = _text(value, "the From address", 254)
    if not text:
        return ""
    _, address = parseaddr(text)
    try:
        validate_email(address)
    except ValidationError:
        raise SettingError(f"{text!r} is not an email address such as twostep@example.com") from None
    return text


def register() -> None:
    """Declare the runtime settings (from ``AppConfig.ready``); defaults come from config.toml."""
    file = settings.CONFIG.email
    for definition in (
        Definition(HOST, file.host, str, _check_host_setting, "SMTP server for outgoing mail (empty: not configured)."),
        Definition(PORT, file.port, _parse_port, _check_port, "SMTP port (587 for STARTTLS, 465 for TLS)."),
        Definition(SECURITY, file.security, str, _check_security, "SMTP connection security: starttls, tls or none."),
        Definition(USERNAME, file.username, str, check_username, "SMTP username (empty: no login)."),
        Definition(
            FROM_ADDRESS, file.from_address, str, check_from_address, "From address of outgoing mail (empty: default)."
        ),
    ):
        register_setting(definition)
    register_encrypted_setting(PASSWORD_KEY)
    register_set_elsewhere(
        PASSWORD_KEY,
        "`twostep email set-password` (read from standard input, never shown) or the console's Outgoing mail page",
    )
    register_method_requirement("email", email_method_problem)
    register_mail_dependent("email codes", _email_codes_in_use)


def email_method_problem() -> str | None:
    """Why email codes cannot be an allowed method now, or None."""
    host = get_settings(HOST)[HOST]
    if host:
        return None
    return "Email codes need outgoing mail: set up an SMTP server on the Outgoing mail page (/admin/email) first."


def default_from_address() -> str:
    """``twostep@`` and the host name of ``server.public_url`` (``localhost`` for an IP address)."""
    host = urlsplit(settings.CONFIG.server.public_url).hostname or "localhost"
    if host.replace(".", "").isdigit() or ":" in host:
        host = "localhost"
    return f"twostep@{host}"


def _stored_password_token() -> str:
    token = Setting.objects.filter(key=PASSWORD_KEY).values_list("value", flat=True).first()
    return token if isinstance(token, str) else ""


def server_of(host: str, port: int, security: str) -> str:
    """Where a password goes: ``host:port (security)``, the identity a password is kept with."""
    return f"{host}:{port} ({security})"


def current_server() -> str:
    """``server_of`` the host, port and security the settings name now."""
    values = get_settings(HOST, PORT, SECURITY)
    return server_of(values[HOST], int(values[PORT]), values[SECURITY])


def _password_and_server() -> tuple[str, str, str]:
    """The password that applies, the server it was given for, and its source (``console``, ``config``, ``""``).

    Raises:
        MailDeliveryError: the stored password cannot be decrypted.
    """
    token = _stored_password_token()
    if token:
        try:
            stored = json.loads(secret_box().decrypt(token))
            return str(stored["password"]), str(stored["server"]), "console"
        except (DecryptionError, KeyFileError, ValueError, KeyError, TypeError) as exc:
            raise MailDeliveryError(
                f"The stored SMTP password cannot be read ({exc}); enter it again under Admin, Outgoing mail (/admin/email).",
                "stored password unreadable",
            ) from None
    file = settings.CONFIG.email
    if file.password:
        return file.password, server_of(file.host, file.port, file.security), "config"
    return "", "", ""


def _given_elsewhere(password: str, given_for: str, source: str, server: str, username: str) -> str | None:
    """Why ``password`` (from ``source``, given for ``given_for``) is not sent to ``server``, or None when it is."""
    if not username or not password or given_for == server:
        return None
    where = "stored" if source == "console" else "in config.toml"
    return (
        f"The SMTP password {where} was given for {given_for} and is only sent there: enter the password for {server}."
    )


def password_elsewhere(host: str, port: int, security: str, username: str) -> str | None:
    """Why a login to this server would have no password, or None.

    That is when a username is set and the password there is (stored, or in
    the config file) was given for another server: it is not sent here.
    An unreadable stored password is ``current``'s to report.
    """
    try:
        password, given_for, source = _password_and_server()
    except MailDeliveryError:
        return None
    return _given_elsewhere(password, given_for, source, server_of(host, port, security), username)


def current_password_elsewhere() -> str | None:
    """``password_elsewhere`` for the settings stored now (for the console page and ``email show``)."""
    values = get_settings(HOST, PORT, SECURITY, USERNAME)
    return password_elsewhere(values[HOST], int(values[PORT]), values[SECURITY], values[USERNAME])


def password_source() -> str:
    """Where the password comes from: ``console``, ``config`` or ``""`` (none)."""
    if _stored_password_token():
        return "console"
    return "config" if settings.CONFIG.email.password else ""


def current() -> SmtpSettings:
    """The settings a delivery uses now.

    Raises:
        MailDeliveryError: the stored password cannot be decrypted (key file
            missing or the key that encrypted it was dropped), or a username
            is set and the password was given for another server.
    """
    file = settings.CONFIG.email
    values = get_settings(*KEYS)
    password, given_for, source = _password_and_server()
    server = server_of(values[HOST], int(values[PORT]), values[SECURITY])
    elsewhere = _given_elsewhere(password, given_for, source, server, values[USERNAME])
    if elsewhere:
        raise MailDeliveryError(f"{elsewhere} (Admin, Outgoing mail: /admin/email)", "password for another server")
    if given_for != server:
        password = ""  # no login (no username): nothing is sent, but never to another server
    return SmtpSettings(
        host=values[HOST],
        port=int(values[PORT]),
        security=values[SECURITY],
        username=values[USERNAME],
        password=password,
        from_address=values[FROM_ADDRESS] or default_from_address(),
        timeout=file.timeout,
        ca_file=resolve_ca_file(file.ca_file, settings.DATA_DIR),
        verify_certificate=file.verify_certificate,
    )


def save(*, host: str, port: int, security: str, username: str, from_address: str) -> dict[str, Any]:
    """Store the non-secret settings; return what was stored.

    Raises:
        SettingError: a value is invalid, or the host is cleared while email
            codes or the email check need it (nothing is stored then).
    """
    checked = {
        HOST: _check_host_setting(host),
        PORT: _check_port(port),
        SECURITY: _check_security(security),
        USERNAME: check_username(username),
        FROM_ADDRESS: check_from_address(from_address),
    }
    for key, value in checked.items():
        set_setting(key, value)
    return checked


def set_password(password: str) -> None:
    """Store the SMTP password, encrypted, for the server the settings name now.

    Raises:
        SettingError: empty, too long or containing line breaks.
    """
    if not password or len(password) > 1024 or "\n" in password or "\r" in password:
        raise SettingError("the SMTP password must be 1 to 1024 characters on one line")
    stored = json.dumps({"server": current_server(), "password": password})
    Setting.objects.update_or_create(key=PASSWORD_KEY, defaults={"value": secret_box().encrypt(stored)})


def clear_password() -> bool:
    """Forget the stored password (the config file's, if any, applies again); return whether one was stored."""
    return bool(Setting.objects.filter(key=PASSWORD_KEY).delete()[0])
