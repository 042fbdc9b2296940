"""The `twostep` command, run as users run it: exit codes and output."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Runner:
    def __init__(self, data_dir: Path) -> None:
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith(("TWOSTEP_", "DJANGO_SETTINGS"))
        }
        self.env.update({"TWOSTEP_DATA_DIR": str(data_dir), "PYTHONPATH": SRC})
        self.data_dir = data_dir

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "twostep.cli", *args],
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def twostep(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    runner = Runner(tmp_path_factory.mktemp("cli") / "data")
    result = runner("init")
    assert result.returncode == 0, result.stderr
    runner.first_init = result  # type: ignore[attr-defined]
    return runner


def test_init_creates_data_dir_once(twostep: Runner) -> None:
    """init writes config, private keys and the database, and prints a one-time password only the first time."""
    first = twostep.first_init  # type: ignore[attr-defined]
    assert "One-time password" in first.stdout
    for name in ("config.toml", "secret.key", "encryption.keys", "twostep.db"):
        assert (twostep.data_dir / name).exists(), name
    for name in ("config.toml", "secret.key", "encryption.keys", "twostep.db"):
        assert stat.S_IMODE((twostep.data_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(twostep.data_dir.stat().st_mode) == 0o700
    config = (twostep.data_dir / "config.toml").read_text()
    assert "[two_factor]" in config and "# Break-glass switch" in config
    again = twostep("init")
    assert again.returncode == 0
    assert "One-time password" not in again.stdout and "already" not in again.stderr
    assert "initialised" in again.stdout


def test_init_without_keys_for_a_database_in_use_refuses(twostep: Runner) -> None:
    """A second instance's init (or one after the keys were lost) does not write keys that cannot read the data."""
    key_files = [twostep.data_dir / name for name in ("secret.key", "encryption.keys")]
    before = [path.read_bytes() for path in key_files]
    key_files[1].rename(twostep.data_dir / "elsewhere.keys")
    refused = twostep("init")
    assert refused.returncode != 0
    assert "copy them from the first instance" in refused.stderr and "encryption.keys" in refused.stderr
    assert not key_files[1].exists()
    (twostep.data_dir / "elsewhere.keys").rename(key_files[1])
    assert twostep("init").returncode == 0
    assert [path.read_bytes() for path in key_files] == before


def test_init_of_a_second_instance_without_keys_writes_nothing(twostep: Runner, tmp_path: Path) -> None:
    """Another instance's init, refused for want of the key files, leaves no config.toml (nor a data directory)."""
    other = Runner(tmp_path / "other")
    other.env["TWOSTEP_DATABASE__SQLITE_PATH"] = str(twostep.data_dir / "twostep.db")  # the shared database
    refused = other("init")
    assert refused.returncode == 1 and "copy them from the first instance" in refused.stderr
    assert not other.data_dir.exists()
    assert "nothing was written" in refused.stderr


@pytest.mark.parametrize("name", ["Bad Name!", "new", ""])
def test_init_with_an_impossible_administrator_name_writes_nothing(tmp_path: Path, name: str) -> None:
    """A first administrator's name that cannot be a username is refused (exit 2) before anything is written:
    no keys, no database, no half installation without an administrator."""
    other = Runner(tmp_path / "data")
    refused = other("init", "--admin-username", name)
    assert refused.returncode == 2 and "--admin-username:" in refused.stderr and "Traceback" not in refused.stderr
    assert not other.data_dir.exists()


def test_init_beside_keys_without_a_database_creates_no_second_installation(twostep: Runner, tmp_path: Path) -> None:
    """Keys and a config.toml naming no database, but no SQLite file: init refuses and writes nothing (no new admin)."""
    other = Runner(tmp_path / "data")
    other.data_dir.mkdir(mode=0o700)
    for name in ("secret.key", "encryption.keys", "config.toml"):
        shutil.copy2(twostep.data_dir / name, other.data_dir / name)
    refused = other("init")
    assert refused.returncode == 1, refused.stdout
    assert sorted(path.name for path in other.data_dir.iterdir()) == ["config.toml", "encryption.keys", "secret.key"]
    assert "One-time password" not in refused.stdout
    assert f"has secret.key and encryption.keys but no database at {other.data_dir / 'twostep.db'}" in refused.stderr
    assert "If this installation uses PostgreSQL, set url under [database]" in refused.stderr


def test_help_lists_commands(twostep: Runner) -> None:
    """`twostep` alone explains itself."""
    result = twostep()
    assert result.returncode == 0
    for command in ("init", "serve", "users", "settings", "keys"):
        assert command in result.stdout


def test_users_add_with_password_stdin(twostep: Runner) -> None:
    """users add takes several emails and phones and reads the password from stdin; show reports them."""
    result = twostep(
        "users", "add", "jane", "--email", "jane@example.com", "--email", "j.backup@example.org",
        "--phone", "+15551234567", "--display-name", "Jane Doe", "--password-stdin",
        stdin="a long enough password\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "One-time password" not in result.stdout
    shown = json.loads(twostep("users", "show", "jane", "--json").stdout)
    assert shown["emails"] == [
        {"email": "jane@example.com", "primary": True},
        {"email": "j.backup@example.org", "primary": False},
    ]
    assert shown["phones"] == [{"number": "+15551234567", "primary": True}]
    assert shown["display_name"] == "Jane Doe" and shown["role"] == "user"
    listing = twostep("users", "list").stdout
    assert "jane" in listing and "admin" in listing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "add", "bad1", "--phone", "12345"], "international form"),
        (["users", "add", "bad2", "--phone", "+1555"], "not a valid phone number"),
        (["users", "add", "bad3", "--email", "nope"], "valid email"),
        (["users", "add", "admin"], "taken"),
        (["users", "add", "bad name!"], "username"),
        (["users", "show", "ghost"], "no user named"),
        (["settings", "set", "two_factor.enabled", "maybe"], "not true or false"),
        (["settings", "set", "two_factor.methods", "totp,carrier-pigeon"], "unknown method"),
        (["settings", "set", "nonsense", "1"], "unknown setting"),
        (["settings", "set", "email.password", "hunter2"], "twostep email set-password"),
        (["users", "add", "bad4", "--display-name", "D" * 151], "at most 150 characters"),
        (["audit", "tail", "-n", "0"], "give at least 1"),
        (["users", "add", "bad5", "--email", "x" * 250 + "@e.com"], "at most 254 characters"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(twostep: Runner, args: list[str], message: str) -> None:
    """Bad input gives exit code 2 and says what is wrong; nothing is created."""
    result = twostep(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_data_directory_it_says_to_run_init(tmp_path: Path) -> None:
    """Any command but init, run where there is no data directory (or no key), says what to do."""
    runner = Runner(tmp_path / "data")
    result = runner("users", "list")
    assert result.returncode == 2 and "no data directory" in result.stderr and "twostep init" in result.stderr
    (tmp_path / "data").mkdir()
    result = runner("serve")
    assert result.returncode == 2 and "secret.key is missing" in result.stderr
    assert "or set TWOSTEP_SECRET_KEY" in result.stderr  # the other way of giving the key
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["users", "list"], ["db", "upgrade"], ["settings", "show"]])
def test_without_a_database_nothing_is_created(twostep: Runner, tmp_path: Path, args: list[str]) -> None:
    """Keys but no SQLite file (a PostgreSQL instance whose URL did not reach the shell): refused, nothing written."""
    runner = Runner(tmp_path / "data")
    runner.data_dir.mkdir(mode=0o700)
    for name in ("secret.key", "encryption.keys", "config.toml"):
        shutil.copy2(twostep.data_dir / name, runner.data_dir / name)
    result = runner(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"no database at {runner.data_dir / 'twostep.db'}: run `twostep init`" in result.stderr
    assert "set database.url (TWOSTEP_DATABASE__URL) if this installation uses PostgreSQL" in result.stderr
    assert sorted(path.name for path in runner.data_dir.iterdir()) == ["config.toml", "encryption.keys", "secret.key"]


def test_a_list_in_the_environment_must_be_json(twostep: Runner) -> None:
    """A malformed JSON value in a TWOSTEP_* variable is named, with the expected form, not a traceback."""
    result = twostep("users", "list", env={"TWOSTEP_SERVER__TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2"})
    assert result.returncode == 2 and "written in JSON" in result.stderr
    assert (
        """TWOSTEP_SERVER__TRUSTED_PROXIES is not valid JSON: """
        """write it as TWOSTEP_SERVER__TRUSTED_PROXIES='["10.0.0.1", "10.0.0.2"]'"""
    ) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["email", "show"], []])
def test_output_cut_short_by_its_reader_ends_quietly(twostep: Runner, args: list[str]) -> None:
    """`twostep email show | head -2`: once the reader has gone, no BrokenPipeError traceback, exit code 0."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that has already left: the first write fails
    with os.fdopen(write_end, "wb") as stdout:
        result = subprocess.run(
            [sys.executable, "-m", "twostep", *args],
            env=twostep.env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(("option", "value", "said"), [("--port", "70000", "1 to 65535"), ("--workers", "0", "1 to 64"),
                                                   ("--threads", "many", "1 to 256")])  # fmt: skip
def test_serve_refuses_impossible_numbers(twostep: Runner, option: str, value: str, said: str) -> None:
    """serve's options have the configuration's bounds: out of them, a usage error (exit 2), not a traceback."""
    result = twostep("serve", option, value)
    assert result.returncode == 2 and f"'{value}' is not a whole number from {said}" in result.stderr


@pytest.mark.parametrize("command", ["frobnicate", "runserver", "flush", "dumpdata", "changepassword"])
def test_unknown_command_fails(twostep: Runner, command: str) -> None:
    """An unknown command is bad input (exit 2, with the list of commands); so are Django's own commands, which
    would pass round serve's checks and twostep's services (a development server, a wiped database)."""
    result = twostep(command, "--noinput") if command == "flush" else twostep(command)
    assert result.returncode == 2 and f"unknown command {command!r}" in result.stderr and "users" in result.stderr
    assert (twostep.data_dir / "twostep.db").stat().st_size > 0


def test_set_password_disable_enable(twostep: Runner) -> None:
    """set-password generates a one-time password; disable and enable flip the active flag."""
    twostep("users", "add", "kim", "--password-stdin", stdin="a long enough password\n")
    result = twostep("users", "set-password", "kim")
    assert result.returncode == 0 and "One-time password" in result.stdout
    assert twostep("users", "disable", "kim").returncode == 0
    assert json.loads(twostep("users", "show", "kim", "--json").stdout)["active"] is False
    assert twostep("users", "enable", "kim").returncode == 0
    assert json.loads(twostep("users", "show", "kim", "--json").stdout)["active"] is True
    assert twostep("users", "unlock", "kim").returncode == 0
    assert twostep("users", "reset-2fa", "kim").returncode == 0


def test_empty_password_stdin_refused(twostep: Runner) -> None:
    """--password-stdin with nothing on stdin is an error."""
    result = twostep("users", "add", "lee", "--password-stdin", stdin="")
    assert result.returncode == 2 and "no password" in result.stderr


def test_settings_show_and_set(twostep: Runner) -> None:
    """settings set changes the database value; show prints it."""
    assert twostep("settings", "set", "two_factor.enabled", "true").returncode == 0
    assert "two_factor.enabled = true" in twostep("settings", "show").stdout
    assert twostep("settings", "set", "two_factor.enabled", "false").returncode == 0
    assert "two_factor.enabled = false" in twostep("settings", "show").stdout


def test_bad_config_value_named_at_startup(twostep: Runner) -> None:
    """A bad environment value stops every command with the key and value named."""
    result = twostep("users", "list", env={"TWOSTEP_SERVER__PORT": "eighty"})
    assert result.returncode == 2
    assert "server.port = 'eighty'" in result.stderr


def test_serve_refuses_unsafe_or_unready_deployments(tmp_path: Path, twostep: Runner) -> None:
    """serve refuses debug mode, a missing key file, and an un-migrated database, saying what to do (FLT-11)."""
    debug = twostep("serve", env={"TWOSTEP_DEBUG": "true"})
    assert debug.returncode != 0 and "debug is on" in debug.stderr

    fresh = Runner(tmp_path / "fresh")
    fresh("init")
    conn = sqlite3.connect(fresh.data_dir / "twostep.db")
    conn.execute("DELETE FROM django_migrations WHERE app = 'mfa'")
    conn.commit()
    conn.close()
    result = fresh("serve")
    assert result.returncode != 0 and "twostep db upgrade" in result.stderr
    (fresh.data_dir / "encryption.keys").unlink()
    result = fresh("serve")
    assert result.returncode != 0 and "encryption key file" in result.stderr


@pytest.mark.parametrize("sharing", [True, False], ids=["shared like granian's", "plain"])
def test_serve_refuses_an_address_already_listened_on(twostep: Runner, sharing: bool) -> None:
    """A second server on a port in use would share its traffic (granian binds for sharing): refused, saying so."""
    with socket.socket() as listener:
        if sharing:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = twostep("serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode != 0
    assert f"127.0.0.1:{port} is already in use" in result.stderr and "Traceback" not in result.stderr
    assert "twostep serving on" not in result.stdout


def test_db_upgrade_is_idempotent(twostep: Runner) -> None:
    """db upgrade applies nothing twice and reports an up-to-date database."""
    result = twostep("db", "upgrade")
    assert result.returncode == 0 and "up to date" in result.stdout
    assert "up to date" in twostep("db", "status").stdout


def test_keys_rotate(twostep: Runner) -> None:
    """keys rotate adds a key and keeps the old ones unless told to drop them."""
    before = (twostep.data_dir / "encryption.keys").read_text().split()
    result = twostep("keys", "rotate")
    assert result.returncode == 0 and "re-encrypted" in result.stdout
    after = [
        line for line in (twostep.data_dir / "encryption.keys").read_text().splitlines() if not line.startswith("#")
    ]
    assert len(after) == 2 and after[1] in before
    assert stat.S_IMODE((twostep.data_dir / "encryption.keys").stat().st_mode) == 0o600


#: Nothing listens there: connections are refused at once.
REFUSED_URL = "postgresql://twostep:S3cretDBpass@127.0.0.1:5499/twostep"


@pytest.mark.parametrize("args", [["db", "status"], ["users", "list"], ["settings", "show"], ["init"]])
def test_unreachable_database_is_one_clear_line(twostep: Runner, args: list[str]) -> None:
    """Every command names the database it could not reach (never its password) in one line, exit 1."""
    result = twostep(*args, env={"TWOSTEP_DATABASE__URL": REFUSED_URL})
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("twostep: cannot reach the database (PostgreSQL 127.0.0.1:5499/twostep): ")
    assert "Connection refused" in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and "S3cretDBpass" not in result.stderr


def test_traceback_flag_keeps_the_details(twostep: Runner) -> None:
    """Django's --traceback (before the verb) still shows where it failed."""
    result = twostep("db", "--traceback", "status", env={"TWOSTEP_DATABASE__URL": REFUSED_URL})
    assert result.returncode == 1 and "Traceback" in result.stderr and "OperationalError" in result.stderr


def test_init_against_an_unreachable_database_writes_no_keys(tmp_path: Path) -> None:
    """A first init that cannot reach the database says so and leaves no keys that might not match it."""
    fresh = Runner(tmp_path / "data")
    result = fresh("init", env={"TWOSTEP_DATABASE__URL": REFUSED_URL})
    assert result.returncode == 1 and "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (fresh.data_dir / "secret.key").exists() and not (fresh.data_dir / "encryption.keys").exists()


def _postgres_url() -> str:
    """The test suite's PostgreSQL server; skipped where there is none, except on CI."""
    url = os.environ.get("TWOSTEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        if os.environ.get("TWOSTEP_CI"):
            raise
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    return url


def test_missing_database_is_one_clear_line(twostep: Runner) -> None:
    """A database name that does not exist on a running server: named, with PostgreSQL's reason."""
    url = _postgres_url().rsplit("/", 1)[0] + "/twostep_no_such_database"
    result = twostep("users", "list", env={"TWOSTEP_DATABASE__URL": url})
    assert result.returncode == 1, result.stderr
    assert "cannot reach the database (PostgreSQL 127.0.0.1:5432/twostep_no_such_database)" in result.stderr
    assert 'database "twostep_no_such_database" does not exist' in result.stderr
    assert "Traceback" not in result.stderr


def test_key_file_that_is_a_directory_is_named(tmp_path: Path) -> None:
    """secret.key replaced by a directory: the path and the reason, not IsADirectoryError's traceback."""
    fresh = Runner(tmp_path / "data")
    assert fresh("init").returncode == 0
    (fresh.data_dir / "secret.key").unlink()
    (fresh.data_dir / "secret.key").mkdir()
    result = fresh("db", "status")
    assert result.returncode == 1
    assert result.stderr == f"twostep: {fresh.data_dir / 'secret.key'}: Is a directory\n"


def test_secret_key_from_the_environment_writes_no_key_file(tmp_path: Path) -> None:
    """With TWOSTEP_SECRET_KEY set, init writes no secret.key (it would never be read) and the instance works."""
    fresh = Runner(tmp_path / "data")
    env = {"TWOSTEP_SECRET_KEY": secrets.token_urlsafe(50)}
    assert fresh("init", env=env).returncode == 0
    assert not (fresh.data_dir / "secret.key").exists() and (fresh.data_dir / "encryption.keys").exists()
    status = fresh("keys", "status", env=env)
    assert status.returncode == 0, status.stderr


@pytest.mark.parametrize("name", ["TWOSTEP_DATABASE_URL", "TWOSTEP_TWO_FACTOR_ENABLED", "TWOSTEP_TWOFACTOR__ENABLED"])
def test_misspelt_variable_stops_init(tmp_path: Path, name: str) -> None:
    """A misspelt variable is not ignored: init stops before creating anything (no SQLite install, no admin)."""
    fresh = Runner(tmp_path / "data")
    result = fresh("init", env={name: "false" if "ENABLED" in name else REFUSED_URL})
    assert result.returncode == 2 and "did you mean TWOSTEP_" in result.stderr
    assert "S3cretDBpass" not in result.stderr
    assert not fresh.data_dir.exists()


def test_misspelt_data_dir_variable_is_not_ignored(twostep: Runner, tmp_path: Path) -> None:
    """TWOSTEP_DATADIR is refused with the right name, instead of quietly using ./data."""
    env = {"TWOSTEP_DATADIR": str(tmp_path / "elsewhere")}
    result = subprocess.run(
        [sys.executable, "-m", "twostep", "settings", "show"],
        env={key: value for key, value in twostep.env.items() if key != "TWOSTEP_DATA_DIR"} | env,
        cwd=twostep.data_dir.parent,  # where ./data is an initialised data directory
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout
    assert "TWOSTEP_DATADIR names no setting; did you mean TWOSTEP_DATA_DIR?" in result.stderr
    assert result.stdout == ""


def test_database_password_is_not_printed_in_a_config_error(twostep: Runner) -> None:
    """A misspelt scheme is refused with the URL shown without its password."""
    result = twostep("users", "list", env={"TWOSTEP_DATABASE__URL": "postgresq://twostep:S3cretDBpass@db/twostep"})
    assert result.returncode == 2
    assert "postgresq://twostep:***@db/twostep" in result.stderr and "S3cretDBpass" not in result.stderr


def test_keys_add_then_rotate(twostep: Runner) -> None:
    """keys add writes a key that does not encrypt yet and prints the procedure; rotate then promotes it."""
    added = twostep("keys", "add")
    assert added.returncode == 0, added.stderr
    assert "does not encrypt yet" in added.stdout and "copy" in added.stdout and "keys rotate" in added.stdout
    assert 'See docs/recovery.md, "Rotating the encryption keys".' in added.stdout  # where the procedure is
    assert "next:" in (twostep.data_dir / "encryption.keys").read_text()
    status = twostep("keys", "status")
    assert status.returncode == 0 and "added key:" in status.stdout and "match the database" in status.stdout
    staged = status.stdout.split("added key:")[1].split()[0]
    rotated = twostep("keys", "rotate")
    assert rotated.returncode == 0 and f"The added key {staged} now encrypts" in rotated.stdout
    assert "next:" not in (twostep.data_dir / "encryption.keys").read_text()
    assert f"encrypting key: {staged}" in twostep("keys", "status").stdout
    dropped = twostep("keys", "drop-old")
    assert dropped.returncode == 0 and "older keys removed" in dropped.stdout
    assert "older key:" not in twostep("keys", "status").stdout


def test_an_instance_whose_keys_differ_is_refused_and_told_which_file(tmp_path: Path) -> None:
    """Instance B shares A's database: after A rotates alone, or with another or a short secret.key, B says what to copy."""
    a = Runner(tmp_path / "a")
    assert a("init").returncode == 0
    b = Runner(tmp_path / "b")
    b.env["TWOSTEP_DATABASE__SQLITE_PATH"] = str(a.data_dir / "twostep.db")
    b.data_dir.mkdir(mode=0o700)
    for name in ("secret.key", "encryption.keys"):
        shutil.copy2(a.data_dir / name, b.data_dir / name)
    status = b("db", "status")
    assert status.returncode == 0 and "match the database" in status.stdout

    assert a("keys", "rotate").returncode == 0  # without `keys add` first, B's file is now stale
    for result in (b("serve"), b("db", "status")):
        assert result.returncode == 1, result.stdout
        assert "encryption.keys" in result.stderr and "Copy encryption.keys" in result.stderr
        assert "Traceback" not in result.stderr
    shutil.copy2(a.data_dir / "encryption.keys", b.data_dir / "encryption.keys")
    assert b("keys", "status").returncode == 0

    (b.data_dir / "secret.key").write_text(secrets.token_urlsafe(50) + "\n")
    result = b("serve")
    assert result.returncode == 1 and "Copy secret.key" in result.stderr
    (b.data_dir / "secret.key").write_text("abc\n")
    result = b("serve")
    assert result.returncode == 1 and "has 3 characters" in result.stderr and "at least 32" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url", ['postgresql://twostep:pa"ss\\word@db.internal/twostep', "postgresql://twostep:p\x7fss@db.internal/twostep"]
)
def test_the_database_url_init_is_given_reads_back_the_same(url: str) -> None:
    """Quotes, backslashes and DEL in a password are written so that the file gives back the very URL."""
    from twostep.core.management.commands.init import _config_text

    assert tomllib.loads(_config_text(url))["database"]["url"] == url
