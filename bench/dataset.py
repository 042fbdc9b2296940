"""The benchmark's data: a data directory made by ``twostep init``, users seeded in bulk, pending sign-ins.

Everything here runs in a process whose Django settings are the data
directory's own (``configure``), so that passwords are hashed with the
production hasher, TOTP secrets are encrypted with the directory's key
exactly as ``twostep.mfa.totp.flows`` stores them (``Authenticator.secret`` =
SecretBox token of the Base32 secret), and sessions are signed with its
secret key.

Rows are built from the models' own field lists (defaults included), so a
column added by a later migration does not break seeding.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

TWOSTEP = [sys.executable, "-m", "twostep.cli"]
#: Every benchmark account's password.
PASSWORD = "bench horse battery staple"
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
POSTGRES_DATABASE = os.environ.get("BENCH_POSTGRES_DATABASE", "bench_twostep")


def server_env(data_dir: Path, database: str) -> dict[str, str]:
    """The environment for ``twostep`` commands and servers on ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOSTEP_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update({"TWOSTEP_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    if database == "postgres":
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        env["TWOSTEP_DATABASE__URL"] = f"{base}/{POSTGRES_DATABASE}"
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH", "")]))
    return env


def create_postgres_database() -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{POSTGRES_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{POSTGRES_DATABASE}"')


def drop_postgres_database() -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{POSTGRES_DATABASE}" WITH (FORCE)')


def initialise(data_dir: Path, database: str) -> dict[str, str]:
    """``twostep init`` in ``data_dir`` (and a fresh PostgreSQL database); return the environment.

    Raises:
        RuntimeError: ``twostep init`` failed.
    """
    env = server_env(data_dir, database)
    if database == "postgres":
        create_postgres_database()
    result = subprocess.run([*TWOSTEP, "init"], env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"twostep init failed: {result.stderr}")
    return env


def configure(env: dict[str, str]) -> None:
    """Load Django with the data directory's settings in this process."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "twostep.settings"
    import django

    django.setup()


# --------------------------------------------------------------------------- users


def totp_key(seed: bytes, index: int) -> bytes:
    """User ``index``'s 160-bit TOTP key, derived so that no list of a million keys is kept."""
    return hmac.digest(seed, index.to_bytes(8, "big"), "sha1")


def username(index: int) -> str:
    return f"bench{index:07d}"


@dataclass
class Population:
    """The seeded users: user ``i`` (1-based) is ``username(i)`` with ``totp_key(seed, i)``."""

    seed: bytes
    size: int = 0
    #: Database id of user 1; users are contiguous.
    first_id: int = 0

    def user_id(self, index: int) -> int:
        return self.first_id + index - 1

    def secret(self, index: int) -> str:
        from twostep.factors.totp import encode_secret

        return encode_secret(totp_key(self.seed, index))


class _Rows:
    """Column list and a template row for ``model``, with defaults prepared for the database."""

    def __init__(self, model: Any, explicit: Sequence[str], now: datetime) -> None:
        from django.db import connection

        self.fields = [f for f in model._meta.concrete_fields]
        self.columns = [f.column for f in self.fields]
        self.table = model._meta.db_table
        self.index = {f.name: i for i, f in enumerate(self.fields)}
        self.index.update({f.attname: i for i, f in enumerate(self.fields)})
        template: list[Any] = []
        for f in self.fields:
            if f.name in explicit or f.attname in explicit:
                template.append(None)
                continue
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                value: Any = now
            else:
                value = f.get_default()
            template.append(f.get_db_prep_save(value, connection))
        self.template = template

    def prep(self, name: str, value: Any) -> Any:
        from django.db import connection

        return self.fields[self.index[name]].get_db_prep_save(value, connection)


def _insert(rows: _Rows, values: Iterable[list[Any]]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany in one transaction on SQLite."""
    from django.db import connection, transaction

    columns = ", ".join(connection.ops.quote_name(c) for c in rows.columns)
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg's own cursor, for COPY
            with raw.copy(f"COPY {connection.ops.quote_name(rows.table)} ({columns}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        return
    marks = ", ".join(["%s"] * len(rows.columns))
    # Table and column names come from the models, never from input.
    sql = f"INSERT INTO {connection.ops.quote_name(rows.table)} ({columns}) VALUES ({marks})"  # noqa: S608
    with transaction.atomic(), connection.cursor() as cursor:
        batch: list[list[Any]] = []
        for row in values:
            batch.append(row)
            if len(batch) >= 20_000:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def seed_users(population: Population, upto: int, progress: Any = print) -> float:
    """Add users ``population.size + 1 .. upto``, each with a confirmed TOTP authenticator.

    One password hash (the production hasher, computed once) is shared by
    every user; each user has its own TOTP key, encrypted with the data
    directory's key.  Returns the seconds it took.
    """
    from django.contrib.auth.hashers import make_password
    from django.core.management.color import no_style
    from django.db import connection

    from twostep.accounts.models import User
    from twostep.core import clock
    from twostep.core.keyring import secret_box
    from twostep.factors.totp import encode_secret
    from twostep.mfa.models import Authenticator, Method

    started = time.perf_counter()
    now = clock.now()
    if population.first_id == 0:
        last = User.objects.order_by("-id").values_list("id", flat=True).first() or 0
        population.first_id = last + 1
    start, stop = population.size + 1, upto
    if stop < start:
        return 0.0
    password_hash = make_password(PASSWORD)

    users = _Rows(User, ("id", "username", "password"), now)
    u_id, u_name, u_password = users.index["id"], users.index["username"], users.index["password"]

    def user_rows() -> Iterator[list[Any]]:
        for index in range(start, stop + 1):
            row = list(users.template)
            row[u_id] = population.user_id(index)
            row[u_name] = username(index)
            row[u_password] = password_hash
            yield row

    _insert(users, user_rows())
    progress(f"    users {start}..{stop} inserted ({time.perf_counter() - started:.1f} s)")

    box = secret_box()
    factors = _Rows(Authenticator, ("id", "user", "secret", "method", "confirmed_at"), now)
    a_id, a_user, a_secret = factors.index["id"], factors.index["user"], factors.index["secret"]
    a_method, a_confirmed = factors.index["method"], factors.index["confirmed_at"]
    confirmed = factors.prep("confirmed_at", now - timedelta(days=1))
    first_factor = (Authenticator.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1

    def factor_rows() -> Iterator[list[Any]]:
        for offset, index in enumerate(range(start, stop + 1)):
            row = list(factors.template)
            row[a_id] = first_factor + offset
            row[a_user] = population.user_id(index)
            row[a_method] = Method.TOTP.value
            row[a_secret] = box.encrypt(encode_secret(totp_key(population.seed, index)))
            row[a_confirmed] = confirmed
            yield row

    _insert(factors, factor_rows())
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [User, Authenticator]):
            cursor.execute(statement)
        if connection.vendor == "postgresql":
            # What autovacuum would do soon after such a load in production.
            cursor.execute(f"ANALYZE {connection.ops.quote_name(users.table)}")
            cursor.execute(f"ANALYZE {connection.ops.quote_name(factors.table)}")
    population.size = stop
    return time.perf_counter() - started


def enable_two_factor() -> None:
    from twostep.core.runtime import set_setting

    set_setting("two_factor.enabled", True)
    set_setting("two_factor.methods", ["totp"])


# --------------------------------------------------------------------------- browsers


@dataclass(frozen=True)
class Browser:
    """Cookies of a browser whose session holds a pending sign-in (after the password step)."""

    index: int
    cookies: dict[str, str]


def csrf_secret() -> str:
    from django.middleware.csrf import _get_new_csrf_string  # type: ignore[attr-defined]

    return str(_get_new_csrf_string())


def pending_browsers(population: Population, indexes: Sequence[int], csrf: str, client_ip: str) -> list[Browser]:
    """For each user index, a pending sign-in and a session holding its token, written in bulk.

    This is what the password step leaves behind (``PendingLogin`` + the
    session key ``twostep_pending``), without paying for an argon2 hash per
    browser in the setup.
    """
    from django.conf import settings
    from django.utils.crypto import get_random_string

    from twostep.accounts.views import NEXT_KEY, PENDING_KEY
    from twostep.core import clock
    from twostep.mfa.login import PAGES_HOLDER
    from twostep.mfa.models import Method, PendingLogin
    from twostep.usersessions.backend import SessionStore, stored_key
    from twostep.usersessions.models import UserSession

    now = clock.now()
    ttl = timedelta(seconds=settings.CONFIG.security.pending_login_ttl)
    store = SessionStore()
    pendings: list[PendingLogin] = []
    sessions: list[UserSession] = []
    browsers: list[Browser] = []
    for index in indexes:
        token = secrets.token_urlsafe(32)
        pendings.append(
            PendingLogin(
                token_hash=hashlib.sha256(token.encode("ascii")).hexdigest(),
                user_id=population.user_id(index),
                method=Method.TOTP.value,
                created_at=now,
                expires_at=now + ttl,
                ip=client_ip,
                holder=PAGES_HOLDER,
            )
        )
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        data = store.encode({PENDING_KEY: token, NEXT_KEY: "/account"})
        sessions.append(
            UserSession(
                session_key=stored_key(key),
                session_data=data,
                expire_date=now + timedelta(seconds=settings.SESSION_COOKIE_AGE),
                ip=client_ip,
                user_agent="twostep-bench/1",
                created_at=now,
                last_seen=now,
            )
        )
        browsers.append(Browser(index, {settings.SESSION_COOKIE_NAME: key, settings.CSRF_COOKIE_NAME: csrf}))
    PendingLogin.objects.bulk_create(pendings, batch_size=2000)
    UserSession.objects.bulk_create(sessions, batch_size=2000)
    return browsers


def reset_replay_guard(population: Population, indexes: Iterable[int]) -> None:
    """Forget the last accepted step of these users, so that a later round may sign them in again."""
    from twostep.mfa.models import Authenticator

    ids = [population.user_id(i) for i in indexes]
    for chunk in range(0, len(ids), 500):
        Authenticator.objects.filter(user_id__in=ids[chunk : chunk + 500]).update(last_step=None)


def set_failures(population: Population, index: int, failures: int) -> None:
    """Put an account's second-step failure counter at ``failures`` with no delay running."""
    from twostep.accounts.models import User

    User.objects.filter(pk=population.user_id(index)).update(
        second_step_failures=failures, second_step_blocked_until=None, second_step_locked_at=None
    )


def account_state(population: Population, index: int) -> dict[str, Any]:
    """The account's throttle state and its second-step results in the auth log."""
    from django.db.models import Count

    from twostep.accounts.models import User
    from twostep.audit.models import AuthEvent

    user = User.objects.get(pk=population.user_id(index))
    reasons = dict(
        AuthEvent.objects.filter(user_id=user.pk, kind="login.second_step")
        .values_list("reason")
        .annotate(n=Count("id"))
        .values_list("reason", "n")
    )
    return {
        "failures": user.second_step_failures,
        "blocked_until": user.second_step_blocked_until.isoformat() if user.second_step_blocked_until else None,
        "locked": user.second_step_locked_at is not None,
        "second_step_results": {reason or "success": n for reason, n in reasons.items()},
    }


def close_connections() -> None:
    """Let go of the database (SQLite: no lock held while the server runs)."""
    from django.db import connections

    connections.close_all()


def now_utc() -> datetime:
    from twostep.core import clock

    return clock.now()
