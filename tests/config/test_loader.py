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


@pytest.mark.parametrize("written", ["password = 84736251", 'password = ["hunter2secret"]'])
def test_a_password_of_the_wrong_type_is_not_shown(tmp_path: Path, written: str) -> None:
    """The SMTP password written as a number or a list is refused, naming the key but not the value."""
    write(tmp_path, f"[email]\n{written}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, {})
    assert "email.password" in str(refused.value) and "Input should be a valid string" in str(refused.value)
    assert "84736251" not in str(refused.value) and "hunter2secret" not in str(refused.value)


def test_out_of_range_value_refused(tmp_path: Path) -> None:
    """Limits from the security policy cannot be loosened past their ceilings (OTP-09)."""
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


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[two_factor]\nenabled = true\n[TWO_FACTOR]\nenabled = false\n", "'two_factor' and 'TWO_FACTOR'"),
        ('[Database]\nurl = ""\n[database]\nurl = "postgresql://u:secret@db/twostep"\n', "'Database' and 'database'"),
        ("[security]\nattempts_per_login = 5\nAttempts_Per_Login = 3\n", "'security.attempts_per_login' and"),
    ],
)
def test_a_name_written_twice_in_another_case_is_refused(tmp_path: Path, text: str, names: str) -> None:
    """Names are read whatever their case; two spellings of one would silently drop one of them (the
    break-glass switch, the database URL): refused, naming both, without the URL's password."""
    write(tmp_path, text)
    with pytest.raises(ConfigError, match="the same name written twice") as refused:
        load_config(tmp_path, {})
    assert names in str(refused.value) and "secret" not in str(refused.value)


def test_a_section_in_another_case_alone_is_read(tmp_path: Path) -> None:
    """``[Two_Factor]`` on its own is the two_factor section, as before."""
    write(tmp_path, "[Two_Factor]\nenabled = false\n")
    assert load_config(tmp_path, {}).two_factor.enabled is False


def test_unknown_section_or_key_gets_a_suggestion(tmp_path: Path) -> None:
    """A misspelt [section] or key in the file is named with the one it was probably meant to be."""
    write(tmp_path, "[twofactor]\nenabled = false\n[server]\nportt = 9000\n")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, {})
    assert "twofactor: unknown key (did you mean two_factor?)" in str(refused.value)
    assert "server.portt: unknown key (did you mean port?)" in str(refused.value)
    with pytest.raises(ConfigError, match=r"server\.portt: unknown key \(did you mean port\?\)"):
        load_config(tmp_path / "none", {"TWOSTEP_SERVER__PORTT": "9000"})


def test_a_rule_with_a_misspelt_key_says_which_key(tmp_path: Path) -> None:
    """ "hosts" for "host": the unknown key and the missing one, without dumping the whole rule."""
    write(tmp_path, '[[forward_auth.rules]]\nhosts = "app.example.com"\npolicy = "signed_in"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, {})
    assert str(refused.value) == (
        "invalid configuration: forward_auth.rules.0.host: missing (a required key); "
        "forward_auth.rules.0.hosts: unknown key (did you mean host?)"
    )


def test_a_list_variable_that_is_not_json_is_named(tmp_path: Path) -> None:
    """A bare address for a list: the variable is named with the JSON to write; a table's value is not repeated."""
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, {"TWOSTEP_SERVER__TRUSTED_PROXIES": "127.0.0.1"})
    assert (
        """TWOSTEP_SERVER__TRUSTED_PROXIES is not valid JSON: write it as TWOSTEP_SERVER__TRUSTED_PROXIES='["127.0.0.1"]'"""
        in str(refused.value)
    )
    assert "EnvSettingsSource" not in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, {"TWOSTEP_DATABASE": "url=postgresql://u:S3cret@h/x"})
    assert "TWOSTEP_DATABASE is not valid JSON;" in str(refused.value) and "S3cret" not in str(refused.value)


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


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("TWOSTEP_DATABASE_URL", "did you mean TWOSTEP_DATABASE__URL?"),
        ("TWOSTEP_TWO_FACTOR_ENABLED", "did you mean TWOSTEP_TWO_FACTOR__ENABLED?"),
        ("TWOSTEP_SERVER_PORT", "did you mean TWOSTEP_SERVER__PORT?"),
        ("TWOSTEP_FORWARD_AUTH_RULES", "did you mean TWOSTEP_FORWARD_AUTH__RULES?"),
        ("TWOSTEP_TWOFACTOR__ENABLED", "did you mean TWOSTEP_TWO_FACTOR__ENABLED?"),
        ("TWOSTEP_DATABSE__URL", "did you mean TWOSTEP_DATABASE__URL?"),
        ("TWOSTEP_DB__URL", "the sections are server, database, two_factor"),
        ("twostep_database_url", "did you mean TWOSTEP_DATABASE__URL?"),
        ("TWOSTEP_DATADIR", "names no setting; did you mean TWOSTEP_DATA_DIR?"),
        ("TWOSTEP_DATA_DIRECTORY", "did you mean TWOSTEP_DATA_DIR?"),
        ("TWOSTEP_LOGLEVEL", "did you mean TWOSTEP_LOG_LEVEL?"),
        ("TWOSTEP_SECRETKEY", "did you mean TWOSTEP_SECRET_KEY?"),
        ("TWOSTEP_FOO", "names no setting; the variables are TWOSTEP_<SECTION>__<KEY>"),
    ],
)
def test_misspelt_variable_names_are_refused(tmp_path: Path, name: str, suggestion: str) -> None:
    """A TWOSTEP_* name that would be silently ignored (wrong section or key, one underscore) stops the start, with the right name."""
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, {name: "false"})
    assert name in str(refused.value) and suggestion in str(refused.value)
    assert "false" not in str(refused.value).replace(name, "")  # the value (maybe a secret) is not shown


def test_variables_of_other_shapes_are_left_alone(tmp_path: Path) -> None:
    """Top-level keys, TWOSTEP_DATA_DIR, TWOSTEP_SECRET_KEY and the test suite's own variables still work."""
    others = {
        "TWOSTEP_DATA_DIR": str(tmp_path),
        "TWOSTEP_SECRET_KEY": "x" * 50,
        "TWOSTEP_TEST_DB": "postgres",
        "TWOSTEP_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "TWOSTEP_TEST_DATABASE_NAME": "test_other",
        "TWOSTEP_TEST_DATA_DIR": str(tmp_path),
        "TWOSTEP_CI": "true",
        "TWOSTEP_BROWSER_SHOTS": str(tmp_path),
        "TWOSTEP_FUZZ_SEED": "1",
        "TWOSTEP_LOG_LEVEL": "WARNING",
        "TWOSTEP_SECRET_KEY_FILE": "other.key",
    }
    config = load_config(tmp_path, others)
    assert config.log_level == "WARNING" and config.secret_key_file == "other.key"
