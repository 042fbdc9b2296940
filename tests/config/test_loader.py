"""The typed configuration: file, environment, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from twostep.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "config.toml").write_text(text)
    return tmp_path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    """An empty data directory gives the documented defaults."""
    config = load_config(tmp_path, {})
    assert config.two_factor.enabled is True
    assert config.server.port == 8000
    assert config.security.pending_login_ttl == 600


def test_environment_overrides_file(tmp_path: Path) -> None:
    """TWOSTEP_* variables (nested with __) win over config.toml."""
    write(tmp_path, '[two_factor]\nenabled = true\nissuer = "Acme"\n[server]\nport = 9000\n')
    config = load_config(tmp_path, {"TWOSTEP_TWO_FACTOR__ENABLED": "false"})
    assert config.two_factor.enabled is False
    assert config.two_factor.issuer == "Acme"
    assert config.server.port == 9000


def test_bad_value_names_key_and_value(tmp_path: Path) -> None:
    """A wrong type fails with the key and the value in the message."""
    with pytest.raises(ConfigError, match=r"server\.port = 'abc'"):
        load_config(tmp_path, {"TWOSTEP_SERVER__PORT": "abc"})


def test_out_of_range_value_refused(tmp_path: Path) -> None:
    """Limits from the security policy cannot be loosened past their ceilings."""
    write(tmp_path, "[security]\npending_login_ttl = 3600\n")
    with pytest.raises(ConfigError, match=r"security\.pending_login_ttl = 3600"):
        load_config(tmp_path, {})
    with pytest.raises(ConfigError, match="totp_skew"):
        load_config(tmp_path, {"TWOSTEP_SECURITY__PENDING_LOGIN_TTL": "600", "TWOSTEP_TWO_FACTOR__TOTP_SKEW": "2"})


def test_unknown_key_refused(tmp_path: Path) -> None:
    """A typo in the file is an error, not silently ignored."""
    write(tmp_path, "[two_factor]\nenabeld = false\n")
    with pytest.raises(ConfigError, match=r"two_factor\.enabeld: unknown key"):
        load_config(tmp_path, {})


def test_malformed_toml_reported(tmp_path: Path) -> None:
    """A syntax error names the file."""
    write(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path, {})


def test_issuer_with_colon_refused(tmp_path: Path) -> None:
    """The issuer is used in otpauth labels where a colon is a separator."""
    with pytest.raises(ConfigError, match="issuer"):
        load_config(tmp_path, {"TWOSTEP_TWO_FACTOR__ISSUER": "a:b"})


def test_shipped_template_is_the_defaults(tmp_path: Path) -> None:
    """The commented config.toml written by `twostep init` parses to exactly the defaults."""
    from importlib.resources import files

    write(tmp_path, files("twostep.config").joinpath("template.toml").read_text())
    assert load_config(tmp_path, {}).model_dump() == load_config(tmp_path / "none", {}).model_dump(
        exclude={"data_dir"}
    ) | {"data_dir": tmp_path}


def test_public_url_follows_the_port_unless_set(tmp_path: Path) -> None:
    """Only the port changed: links and redirects use it too; a public_url that is set is kept as it is."""
    assert load_config(tmp_path, {}).server.public_url == "http://127.0.0.1:8000"
    moved = load_config(tmp_path, {"TWOSTEP_SERVER__PORT": "8100", "TWOSTEP_SERVER__HOST": "0.0.0.0"})  # noqa: S104 - listening everywhere
    assert moved.server.public_url == "http://127.0.0.1:8100"
    chosen = load_config(
        tmp_path, {"TWOSTEP_SERVER__PORT": "8100", "TWOSTEP_SERVER__PUBLIC_URL": "https://login.example.com/"}
    )
    assert chosen.server.public_url == "https://login.example.com"
