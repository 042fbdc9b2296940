"""Read twostep's configuration from the data directory and the environment.

Precedence, highest first: ``TWOSTEP_*`` environment variables (nested keys
joined with ``__``, e.g. ``TWOSTEP_TWO_FACTOR__ENABLED``), then
``<data_dir>/config.toml``, then the defaults below.  This module has no
Django imports: the Django settings module is built from its result.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from twostep.config import database
from twostep.core.client import ProxyHeader
from twostep.forwardauth.rules import fold_case

DEFAULT_DATA_DIR = "data"
CONFIG_FILE_NAME = "config.toml"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: The WSGI server ``twostep serve`` starts: granian (measured faster by
    #: ``make bench``) or gunicorn with gthread workers.
    engine: Literal["granian", "gunicorn"] = "granian"
    workers: int = Field(default=2, ge=1, le=64)
    threads: int = Field(default=4, ge=1, le=256)
    #: The address users type, e.g. ``https://login.example.com``.  When it is
    #: https, cookies get ``Secure`` and the ``__Host-`` prefix and HSTS is sent.
    #: Unset, it is where ``host`` and ``port`` listen (``http://127.0.0.1:8000``).
    public_url: str = ""
    #: Peers whose proxy headers (``client_ip_header``, ``X-Forwarded-Proto``) are believed.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: The one header the trusted proxies write the client's address into:
    #: ``x-forwarded-for`` or RFC 7239 ``forwarded``.  The other is ignored,
    #: since a proxy passes it on as the client sent it.
    client_ip_header: ProxyHeader = "x-forwarded-for"

    @field_validator("public_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _default_public_url(self) -> ServerConfig:
        # Changing only the port must not leave redirects and links on the old one.
        if not self.public_url:
            host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host  # noqa: S104 - a listen address
            self.public_url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")


class DatabaseConfig(_Section):
    #: ``postgresql://user:password@host:5432/name?sslmode=verify-full`` for
    #: PostgreSQL, read as libpq reads it (see twostep.config.database); empty for SQLite.
    url: str = ""
    #: SQLite file, relative to the data directory.
    sqlite_path: str = "twostep.db"

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value:
            database.parse_url(value)  # raises ValueError, whose message never holds the password
        return value

    def connection_parameters(self) -> dict[str, str]:
        """libpq's parameters for ``url`` (``dbname``, ``user``, ``password``, ``host``, ``port``, ``sslmode``...).

        Raises:
            ValueError: ``url`` is empty or invalid (never for a loaded configuration: it was checked).
        """
        return database.parse_url(self.url)


class TwoFactorConfig(_Section):
    #: Break-glass switch: ``false`` makes every sign-in password-only,
    #: whatever the admin console says.
    enabled: bool = True
    #: Shown by authenticator apps next to the account name.
    issuer: str = "twostep"
    #: Steps accepted either side of the current one (0 or 1).
    totp_skew: int = Field(default=1, ge=0, le=1)

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        if not value or ":" in value:
            raise ValueError("must be non-empty and contain no colon")
        return value


class SecurityConfig(_Section):
    session_idle_timeout: int = Field(default=3600, ge=60, le=3600)
    session_absolute_timeout: int = Field(default=86400, ge=300, le=86400)
    reauth_max_age: int = Field(default=300, ge=30, le=900)
    pending_login_ttl: int = Field(default=600, ge=60, le=600)
    #: Second-step failures before a growing delay, and before the lock.
    second_step_delay_after: int = Field(default=5, ge=1, le=20)
    second_step_lock_after: int = Field(default=20, ge=5, le=100)
    #: Minutes a second-step lock lasts; 0 keeps it until an admin unlocks it
    #: (or the user signs in with a recovery code).
    second_step_lock_minutes: int = Field(default=0, ge=0, le=7 * 24 * 60)
    #: Wrong codes that kill one pending sign-in.
    attempts_per_login: int = Field(default=5, ge=1, le=10)
    #: Email and SMS codes sent at the request of one client address (an IPv6
    #: /64) in 15 minutes, whatever the accounts; 0 for no such limit.
    codes_per_address: int = Field(default=50, ge=0, le=100_000)


#: Roles a forward-auth rule may name: the values of twostep.accounts.models.Role
#: (kept here because this module has no Django imports; a test keeps them in step).
FORWARD_AUTH_ROLES = ("admin", "user")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _host_name(value: str, *, wildcard: bool) -> str:
    host = value.strip().lower().rstrip(".")
    is_wildcard = wildcard and host.startswith("*.")
    labels = (host[2:] if is_wildcard else host).split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError("must be a host name such as app.example.com" + (" or *.example.com" if wildcard else ""))
    if is_wildcard and len(labels) < 2:
        raise ValueError("a wildcard needs at least two labels after '*.', e.g. *.example.com")
    return host


class ForwardAuthRule(_Section):
    """Who may reach one protected host (and path) through the reverse proxy."""

    #: ``app.example.com``, or ``*.example.com`` for every sub-domain (not
    #: example.com itself).  Ports are ignored.
    host: str
    #: ``/wiki`` covers /wiki and /wiki/..., not /wikipedia; case is ignored
    #: (kept case-folded).
    path_prefix: str = "/"
    #: ``"signed_in"`` (anyone fully signed in), a list of roles such as
    #: ``["admin"]``, or ``"deny"``.
    policy: str | list[str]

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _host_name(value, wildcard=True)

    @field_validator("path_prefix")
    @classmethod
    def _check_path_prefix(cls, value: str) -> str:
        if not value.startswith("/") or any(char in value for char in "?#\\") or not value.isprintable():
            raise ValueError("must be a path starting with / (no query, fragment or backslash)")
        segments = value.rstrip("/").split("/")[1:]
        if any(char in value for char in "%;") or "" in segments or {".", ".."} & set(segments):
            # Requests are compared once decoded and normalised: such a prefix would never match,
            # or match one spelling only.
            raise ValueError(
                "must be written as the page's path reads, decoded (a space, not %20), "
                "without ;parameters, // or . and .. segments"
            )
        # Folded as the request's path is: matching ignores case, so that a
        # /Private rule covers /private too (and /Docs matches /Docs at all).
        return fold_case(value.rstrip("/")) or "/"

    @field_validator("policy")
    @classmethod
    def _check_policy(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            if value not in ("signed_in", "deny"):
                raise ValueError('must be "signed_in", "deny" or a list of roles such as ["admin"]')
            return value
        unknown = [role for role in value if role not in FORWARD_AUTH_ROLES]
        if not value or unknown:
            raise ValueError(f"roles must be a non-empty list of {', '.join(FORWARD_AUTH_ROLES)}")
        return value


class ForwardAuthConfig(_Section):
    """Reverse proxies asking twostep whether a request may pass (docs/forward-auth.md)."""

    #: Checked in order: the first rule whose host and path match decides.
    #: A request that no rule matches is denied.
    rules: list[ForwardAuthRule] = Field(default_factory=list)
    #: Parent domain (``example.com``) so that the session cookie also reaches
    #: the protected sub-domains.  Empty: the cookie stays on twostep's host.
    session_cookie_domain: str = ""
    #: Host names under which the proxy reaches /auth/request or /auth/forward, besides
    #: public_url's host and 127.0.0.1/localhost: e.g. a Docker service name
    #: (Traefik always sends the Host of its forwardAuth address).
    internal_hosts: list[str] = Field(default_factory=list)

    @field_validator("internal_hosts")
    @classmethod
    def _check_internal_hosts(cls, value: list[str]) -> list[str]:
        return [_host_name(host, wildcard=False) for host in value]

    @field_validator("session_cookie_domain")
    @classmethod
    def _check_cookie_domain(cls, value: str) -> str:
        value = value.strip().lstrip(".")
        if not value:
            return ""
        domain = _host_name(value, wildcard=False)
        if "." not in domain:
            raise ValueError("must be a parent domain with at least two labels, e.g. example.com")
        return domain

    def cookie_domain_for(self, public_host: str) -> str | None:
        """The ``Domain`` attribute for twostep's session cookie, or None for a host-only cookie.

        Raises:
            ConfigError: twostep's own host (from ``server.public_url``) is not
                inside the configured domain, so browsers would drop the cookie.
        """
        domain = self.session_cookie_domain
        if not domain:
            return None
        host = public_host.lower().rstrip(".")
        if host != domain and not host.endswith("." + domain):
            raise ConfigError(
                f"invalid configuration: forward_auth.session_cookie_domain = {domain!r}: "
                f"server.public_url's host {host!r} is not inside it"
            )
        return domain


class EmailConfig(_Section):
    """Outgoing mail (SMTP), see docs/email.md.

    Admins can override host, port, security, username, password and from
    address in the console (/admin/email); the values here are the defaults.
    Timeout and certificate checks are set only here.
    """

    #: SMTP server; empty means outgoing mail is not configured.
    host: str = ""
    port: int = Field(default=587, ge=1, le=65535)
    #: ``starttls`` (upgrade a plain connection, usually port 587), ``tls``
    #: (implicit TLS, usually port 465) or ``none`` (plain text, local relays only).
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str = ""
    #: Prefer the console (stored encrypted) or TWOSTEP_EMAIL__PASSWORD over this file.
    password: str = ""
    #: Sender, e.g. ``twostep@example.com`` or ``Sign-in <twostep@example.com>``;
    #: empty: ``twostep@`` followed by the host name of ``server.public_url``.
    from_address: str = ""
    #: Seconds a whole delivery may take (connect, TLS, login, send) before it fails.
    timeout: float = Field(default=10.0, gt=0, le=60)
    #: PEM file of certificate authorities to trust for the SMTP server's
    #: certificate instead of the system ones (relative to the data directory).
    ca_file: str = ""
    #: Check the server's TLS certificate and host name.  Only switch this off
    #: for a test relay: anyone on the path could read the codes.
    verify_certificate: bool = True


class AuditConfig(_Section):
    #: Days the auth log keeps an event; older ones are deleted.
    retention_days: int = Field(default=90, ge=1, le=3650)


class TwostepConfig(_Section):
    """Everything twostep reads at start-up."""

    debug: bool = False
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: File names relative to the data directory.
    secret_key_file: str = "secret.key"  # noqa: S105 - a file name, not a secret
    encryption_keys_file: str = "encryption.keys"
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    two_factor: TwoFactorConfig = Field(default_factory=TwoFactorConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    forward_auth: ForwardAuthConfig = Field(default_factory=ForwardAuthConfig)

    def path(self, name: str) -> Path:
        """Return ``name`` resolved against the data directory."""
        return (self.data_dir / name).resolve()

    def database_location(self) -> str:
        """The database for messages, e.g. ``PostgreSQL db.internal:5432/twostep``, never with its password."""
        if self.database.url:
            return f"PostgreSQL {database.describe(self.database.connection_parameters())}"
        return f"SQLite {self.path(self.database.sqlite_path)}"


def _keys_beside(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model expects where ``loc`` points (``("two_factor", "enabeld")``: two_factor's keys)."""
    model: type[BaseModel] = TwostepConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an item of a list of tables, e.g. forward_auth.rules.0
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
        else:
            return []
    return list(model.model_fields)


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(error["loc"][-1]), _keys_beside(tuple(error["loc"])), n=1)
        return f"{key}: unknown key" + (f" (did you mean {close[0]}?)" if close else "")
    if error["type"] == "missing":
        # The input is the whole table the key is missing from: not worth printing.
        return f"{key}: missing (a required key)"
    if isinstance(value, str) and (key == "database.url" or "://" in value):
        # database.url (or a URL given where another key was meant) may carry a password.
        return f"{key} = {database.redact_url(value)!r}: {message}"
    if key.startswith(("database", "email")) and not isinstance(value, str | int | float | bool):
        # A whole section as a table (TWOSTEP_DATABASE='{...}'): it may hold the URL or the password.
        return f"{key}: {message}"
    if key.endswith("password"):
        # A password of the wrong type (a number, a list) is still a password.
        return f"{key} (not shown): {message}"
    return f"{key} = {value!r}: {message}"


def load_config(data_dir: Path | str | None = None, environ: Mapping[str, str] | None = None) -> TwostepConfig:
    """Load the configuration for ``data_dir`` (default: ``$TWOSTEP_DATA_DIR`` or ``./data``).

    Raises:
        ConfigError: the TOML file is malformed, a key is unknown or has a
            value of the wrong type or range (the message names the key and
            value, a database URL without its password), or a ``TWOSTEP_*``
            variable names no setting: an unknown section or top-level key, or
            section and key joined with one underscore (the message suggests
            the right name where one is close).
    """
    env = dict(os.environ if environ is None else environ)
    directory = Path(data_dir or env.get("TWOSTEP_DATA_DIR") or DEFAULT_DATA_DIR)
    file_values: dict[str, Any] = {}
    config_file = directory / CONFIG_FILE_NAME
    if config_file.exists():
        try:
            source = TomlConfigSettingsSource(_EnvironmentShape, toml_file=config_file)
            _refuse_names_twice(source.toml_data, config_file)
            file_values = source()
        except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise ConfigError(f"{config_file}: not valid TOML: {exc}") from None
    file_values["data_dir"] = directory
    env.pop("TWOSTEP_DATA_DIR", None)
    _check_variable_names(env)
    try:
        return _build(file_values, env)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def _refuse_names_twice(table: Mapping[str, Any], config_file: Path, within: str = "") -> None:
    """Raise ConfigError when two names of one table differ only in case (``[two_factor]``, ``[TWO_FACTOR]``).

    Names are read without regard to case, and of two such sections one
    would be dropped without a word: the break-glass switch or the database
    URL could be the one.
    """
    seen: dict[str, str] = {}
    for name, value in table.items():
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise ConfigError(
                f"{config_file}: '{within}{other}' and '{within}{name}' are the same name written twice "
                "(case does not count): keep one"
            )
        if isinstance(value, Mapping):
            _refuse_names_twice(value, config_file, f"{within}{name}.")


class _EnvironmentShape(BaseSettings, TwostepConfig):
    """The same fields, read by pydantic-settings from ``TWOSTEP_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="TWOSTEP_", env_nested_delimiter="__", extra="forbid")


def _sections() -> list[str]:
    """The config file's [sections]: the fields of TwostepConfig that are themselves models."""
    return [
        name
        for name, field in TwostepConfig.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]


#: ``TWOSTEP_*`` variables that are not configuration keys but are read
#: elsewhere: the secret key itself (twostep.settings, core.keycheck, init),
#: and the test suite's switches (tests/settings.py, tests/conftest.py,
#: tests/browser, tests/api/test_schemathesis.py), which are set while this
#: loader runs inside the suite.  ``TWOSTEP_DATA_DIR`` is the field ``data_dir``.
OTHER_VARIABLES = frozenset({"SECRET_KEY", "CI", "BROWSER_SHOTS", "FUZZ_SEED", "FUZZ_EXAMPLES"})
#: Every ``TWOSTEP_TEST_*`` name is the test suite's (TWOSTEP_TEST_DB, TWOSTEP_TEST_POSTGRES_URL...).
OTHER_PREFIX = "TEST_"


def _misspelt_variable(name: str, sections: list[str]) -> str | None:
    """Why the variable ``name`` is refused, or None when it is fine or not meant for twostep.

    pydantic-settings reads ``TWOSTEP_<FIELD>`` and ``TWOSTEP_<SECTION>__<KEY>``
    and ignores every other ``TWOSTEP_*`` name, so a misspelt one would
    silently drop a setting (a PostgreSQL URL, the break-glass switch, the
    data directory).  Only the names of ``OTHER_VARIABLES`` and
    ``OTHER_PREFIX`` are left alone.
    """
    upper = name.upper()
    if not upper.startswith("TWOSTEP_"):
        return None
    rest = upper.removeprefix("TWOSTEP_")
    upper_sections = [section.upper() for section in sections]
    section, delimiter, key = rest.partition("__")
    if delimiter:
        if section in upper_sections:
            return None  # an unknown key in a known section is named by the model's own check
        close = difflib.get_close_matches(section, upper_sections, n=1)
        if close:
            return f"{name}: there is no section {section.lower()!r}; did you mean TWOSTEP_{close[0]}__{key}?"
        return f"{name}: there is no section {section.lower()!r}; the sections are {', '.join(sections)}"
    fields = [field.upper() for field in TwostepConfig.model_fields]
    if rest in fields or rest in OTHER_VARIABLES or rest.startswith(OTHER_PREFIX):
        return None
    for section in upper_sections:
        if rest.startswith(section + "_"):
            key = rest.removeprefix(section + "_")
            return (
                f"{name}: a section and its key are joined with two underscores; did you mean TWOSTEP_{section}__{key}?"
            )
    close = difflib.get_close_matches(rest, [*fields, "SECRET_KEY"], n=1)  # not the test suite's names
    if close:
        return f"{name} names no setting; did you mean TWOSTEP_{close[0]}?"
    scalars = [field for field in fields if field.lower() not in sections]
    return (
        f"{name} names no setting; the variables are TWOSTEP_<SECTION>__<KEY> (sections: {', '.join(sections)}), "
        + ", ".join(f"TWOSTEP_{field}" for field in scalars)
        + " and TWOSTEP_SECRET_KEY"
    )


def _check_variable_names(env: Mapping[str, str]) -> None:
    """Refuse ``TWOSTEP_*`` variables that name no setting (they would be ignored).

    Raises:
        ConfigError: names each such variable (never its value) and the name it was probably meant to be.
    """
    sections = _sections()
    problems = [problem for name in sorted(env) if (problem := _misspelt_variable(name, sections))]
    if problems:
        raise ConfigError(f"invalid configuration: {'; '.join(problems)}")


def _environment_values(env: Mapping[str, str]) -> dict[str, Any]:
    source = EnvSettingsSource(
        _EnvironmentShape, env_prefix="TWOSTEP_", env_nested_delimiter="__", case_sensitive=False
    )
    source.env_vars = {key.lower(): value for key, value in env.items()}
    try:
        return source()
    except SettingsError as exc:
        # A list or table given in the environment is JSON; say so instead of a traceback.
        # pydantic-settings names only the section ("server"): find the variable.
        raise ConfigError(
            f"invalid configuration: {_not_json(env) or exc}; lists and tables in TWOSTEP_* variables are "
            """written in JSON, e.g. TWOSTEP_SERVER__TRUSTED_PROXIES='["10.0.0.1"]'"""
        ) from None


def _not_json(env: Mapping[str, str]) -> str | None:
    """Which variable of a list or table is not valid JSON, with its value written as JSON where it can be; or None.

    The value itself is repeated only for lists of strings (addresses, host
    names): a table, such as the whole [database] section, may hold a password.
    """
    for name in sorted(env):
        if not name.upper().startswith("TWOSTEP_"):
            continue
        annotation = _annotation_at(name.upper().removeprefix("TWOSTEP_").lower().split("__"))
        origin = typing.get_origin(annotation)
        is_table = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if origin not in (list, dict) and not is_table:
            continue
        try:
            json.loads(env[name])
        except ValueError:
            if typing.get_args(annotation) == (str,):
                items = [item.strip() for item in env[name].split(",") if item.strip()]
                return f"{name} is not valid JSON: write it as {name}='{json.dumps(items)}'"
            return f"{name} is not valid JSON"
    return None


def _annotation_at(path: list[str]) -> Any:
    """The type of the configuration field at ``path`` (``["server", "trusted_proxies"]``), or None."""
    annotation: Any = TwostepConfig
    for part in path:
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        field = annotation.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
    return annotation


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(file_values: dict[str, Any], env: Mapping[str, str]) -> TwostepConfig:
    return TwostepConfig.model_validate(_merge(file_values, _environment_values(env)))
