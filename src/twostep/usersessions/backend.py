"""Session engine: Django's database sessions, in a table with user, IP, agent and last-seen.

The table does not hold session keys: a row is named by a digest of its
key (``stored_key``), so whoever reads the database (a backup, a replica)
cannot present a row's name as a cookie and be signed in.  The key has 160
random bits, so an unkeyed hash is enough and no secret needs rotating.

The statements that requests run are written by hand
(``twostep.core.rawsql``): sessions are read and written on nearly every
request, and a sign-in renames its session instead of copying it, so the
ORM's query building was most of their cost.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.db import IntegrityError, connection, transaction

from twostep.core import clock, rawsql

if TYPE_CHECKING:
    from twostep.usersessions.models import UserSession

#: Session keys that twostep itself keeps (Django's are _auth_user_*).
LAST_SEEN_KEY = "twostep_last_seen"
STARTED_KEY = "twostep_started"

#: Every column, in the order the statements below use them.
_COLUMNS = ("session_key", "session_data", "expire_date", "user", "ip", "user_agent", "created_at", "last_seen")


class SessionStore(DBStore):
    #: Set by SessionLifetimeMiddleware before the session is saved.
    client_ip: str | None = None
    user_agent: str = ""
    #: (key, serialized data) of this store's last write.
    _written: tuple[str, bytes] | None = None

    @classmethod
    def get_model_class(cls) -> Any:
        from twostep.usersessions.models import UserSession

        return UserSession

    @property
    def _sql(self) -> _Statements:
        # Built once per process: a store is made for every request.
        return _statements_for(self.model)

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        instance = cast("UserSession", super().create_model_instance(data))
        instance.session_key = stored_key(instance.session_key)
        user_id = data.get("_auth_user_id")
        instance.user_id = int(user_id) if user_id is not None else None
        instance.ip = self.client_ip
        instance.user_agent = self.user_agent
        # Django rewrites every column on each save, so both times are kept
        # in the session data and copied here.
        now = clock.timestamp()
        instance.created_at = _datetime(data.get(STARTED_KEY, now))
        instance.last_seen = _datetime(data.get(LAST_SEEN_KEY, now))
        return instance

    # Expiry is reckoned on twostep's clock (``core.clock``), as every other
    # time limit is; Django's default reads the system clock directly.
    def get_expiry_age(self, **kwargs: Any) -> int:
        kwargs.setdefault("modification", clock.now())
        return super().get_expiry_age(**kwargs)

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        kwargs.setdefault("modification", clock.now())
        return super().get_expiry_date(**kwargs)

    def _get_new_session_key(self) -> str:
        # No look-up first (Django's asks the table whether the key is free):
        # ``create`` already retries when the INSERT finds the key taken.
        return new_session_key()

    def exists(self, session_key: str) -> bool:
        return bool(self.model.objects.filter(session_key=stored_key(session_key)).exists())

    def load(self) -> dict[str, Any]:
        if not self.session_key:
            return {}
        now = rawsql.prep(self.model, "expire_date", clock.now())
        row = rawsql.fetchone(self._sql.load, [stored_key(self.session_key), now])
        if row is None:
            self._session_key = None
            return {}
        return self.decode(row[0])

    def save(self, must_create: bool = False) -> None:
        """Write the session's row: an INSERT when ``must_create``, else an UPDATE.

        Raises:
            CreateError: ``must_create`` and the key is taken.
            UpdateError: not ``must_create`` and the row is gone (e.g. signed out elsewhere).
        """
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        # Compared unsigned: signing (and compressing) is most of a save's cost.
        written = (self.session_key, self.serializer().dumps(data))
        if not must_create and written == self._written:
            # Saved earlier in this request with the same data (e.g. inside the
            # sign-in's transaction): the response's own save has nothing to add.
            return None
        instance = self.create_model_instance(data)
        values = rawsql.prepared(instance, self._sql.fields)
        if not must_create:
            if not rawsql.execute(self._sql.update, [*values[1:], values[0]]):
                raise UpdateError
            self._written = written
            return None
        # A failed INSERT must not spoil an enclosing transaction (PostgreSQL),
        # so it gets a savepoint there; alone, it needs no transaction of its own.
        try:
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                rawsql.execute(self._sql.insert, values)
        except IntegrityError:
            raise CreateError from None
        self._written = written
        return None

    def cycle_key(self) -> None:
        """A new key for the same session: the row is renamed in place (one UPDATE).

        The data is written when the session is next saved, as after
        Django's own ``cycle_key``.  A new key has 160 random bits (see
        ``new_session_key``), so it is not checked for a collision first;
        the primary key would refuse one.  When the row is gone, the session
        was ended while this request ran (signed out everywhere, by an
        administrator): the new session starts empty, rather than bringing
        back what was ended under a new key.
        """
        data = self._session  # type: ignore[attr-defined]
        old = self.session_key
        if old:
            new = new_session_key()
            if rawsql.execute(self._sql.rename, [stored_key(new), stored_key(old)]):
                self._session_key = new
                self._session_cache = data
                self.modified = True
                return
            # create() writes what the session holds: empty it first, not only afterwards.
            data = {}
            self._session_cache = data
        self.create()
        self._session_cache = data

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        rawsql.execute(self._sql.delete, [stored_key(session_key)])


@dataclass(frozen=True)
class _Statements:
    """The session table's statements, built once per process from the model's names."""

    fields: list[Any]
    load: str
    insert: str
    update: str
    rename: str
    delete: str

    @classmethod
    def for_model(cls, model: Any) -> _Statements:
        """The statements for the session ``model``'s table."""
        table = rawsql.table(model)
        fields = [rawsql.field(model, name) for name in _COLUMNS]
        columns = [rawsql.column(model, name) for name in _COLUMNS]
        key, data, expires = columns[0], columns[1], columns[2]
        assignments = ", ".join(f"{c} = %s" for c in columns[1:])
        # Names come from the model; values are parameters.
        return cls(
            fields=fields,
            load=f"SELECT {data} FROM {table} WHERE {key} = %s AND {expires} > %s",  # noqa: S608
            insert=rawsql.insert_sql(model, fields),
            update=f"UPDATE {table} SET {assignments} WHERE {key} = %s",  # noqa: S608
            rename=f"UPDATE {table} SET {key} = %s WHERE {key} = %s",  # noqa: S608
            delete=f"DELETE FROM {table} WHERE {key} = %s",  # noqa: S608
        )


def new_session_key() -> str:
    """A fresh session key: 32 characters of ``[a-z2-7]`` carrying 160 random bits.

    One read of the operating system's random source, where Django's
    ``get_random_string`` makes one per character.  The alphabet is a
    subset of the characters Django accepts in a session key.
    """
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()


def stored_key(session_key: str) -> str:
    """The name of a session's row: 160 bits of the key's SHA-256, in the key's own alphabet.

    The cookie holds the key, the table only this; ``cycle_key`` renames
    the row to the new key's digest.
    """
    digest = hashlib.sha256(session_key.encode()).digest()[:20]
    return base64.b32encode(digest).decode("ascii").lower()


@cache
def _statements_for(model: Any) -> _Statements:
    return _Statements.for_model(model)


def _datetime(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, tz=UTC)
