"""Read twostep's configuration from the data directory and the environment.

Precedence, highest first: ``TWOSTEP_*`` environment variables (nested keys
joined with ``__``, e.g. ``TWOSTEP_TWO_FACTOR__ENABLED``), then
``<data_dir>/config.toml``, then the defaults below.  This module has no
Django imports: the Django settings module is built from its result.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATA_DIR = "data"
CONFIG_FILE_NAME = "config.toml"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=2, ge=1, le=64)
    threads: int = Field(default=8, ge=1, le=256)
    #: The address users type, e.g. ``https://login.example.com``.  When it is
    #: https, cookies get ``Secure`` and the ``__Host-`` prefix and HSTS is sent.
    public_url: str = "http://127.0.0.1:8000"
    #: Peers whose ``X-Forwarded-For`` / ``Forwarded`` headers are believed.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("public_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

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
    #: ``postgresql://user@host:5432/name`` for PostgreSQL; empty for SQLite.
    url: str = ""
    #: SQLite file, relative to the data directory.
    sqlite_path: str = "twostep.db"

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("only postgresql:// URLs are supported (leave empty for SQLite)")
        return value


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
    #: Wrong codes that kill one pending sign-in.
    attempts_per_login: int = Field(default=5, ge=1, le=10)


class TwostepConfig(BaseSettings):
    """Everything twostep reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="TWOSTEP_",
        env_nested_delimiter="__",
        extra="forbid",
    )

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file is handed in through init kwargs by load_config(),
        # so that environment variables still win over it.
        return (env_settings, init_settings)

    def path(self, name: str) -> Path:
        """Return ``name`` resolved against the data directory."""
        return (self.data_dir / name).resolve()


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    return f"{key} = {value!r}: {message}"


def load_config(data_dir: Path | str | None = None, environ: Mapping[str, str] | None = None) -> TwostepConfig:
    """Load the configuration for ``data_dir`` (default: ``$TWOSTEP_DATA_DIR`` or ``./data``).

    Raises:
        ConfigError: the TOML file is malformed, or a key is unknown or has a
            value of the wrong type or range.  The message names the key and value.
    """
    env = dict(os.environ if environ is None else environ)
    directory = Path(data_dir or env.get("TWOSTEP_DATA_DIR") or DEFAULT_DATA_DIR)
    file_values: dict[str, Any] = {}
    config_file = directory / CONFIG_FILE_NAME
    if config_file.exists():
        try:
            file_values = TomlConfigSettingsSource(TwostepConfig, toml_file=config_file)()
        except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise ConfigError(f"{config_file}: not valid TOML: {exc}") from None
    file_values["data_dir"] = directory
    env.pop("TWOSTEP_DATA_DIR", None)
    try:
        return _build(file_values, env)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def _build(file_values: dict[str, Any], env: Mapping[str, str]) -> TwostepConfig:
    class _Scoped(TwostepConfig):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            source = EnvSettingsSource(
                settings_cls,
                env_prefix="TWOSTEP_",
                env_nested_delimiter="__",
                case_sensitive=False,
            )
            source.env_vars = {k.lower(): v for k, v in env.items()}
            return (source, init_settings)

    scoped = _Scoped(**file_values)
    return TwostepConfig.model_validate(scoped.model_dump())
