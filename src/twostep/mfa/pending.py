"""Reading and spending pending sign-ins: the second step's own statements.

These run on every second-step attempt, so they are written by hand (see
``twostep.core.rawsql``): one query reads a pending sign-in with its
account, one reads the factor, and spending is one conditional UPDATE.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from twostep.accounts.models import User
from twostep.core import rawsql
from twostep.mfa.models import Authenticator, PendingLogin

_PENDING = rawsql.Columns(PendingLogin, [f.name for f in PendingLogin._meta.concrete_fields])
_USER = rawsql.Columns(User, [f.name for f in User._meta.concrete_fields])
_FACTOR = rawsql.Columns(Authenticator, [f.name for f in Authenticator._meta.concrete_fields])


@cache
def _with_account(where: str, lock: bool) -> str:
    """``SELECT`` a pending sign-in joined with its account, ``where`` one of its columns equals %s."""
    pending, user = rawsql.table(PendingLogin), rawsql.table(User)
    on = f"u.{rawsql.column(User, 'id')} = p.{rawsql.column(PendingLogin, 'user')}"
    condition = f"p.{rawsql.column(PendingLogin, where)} = %s"
    # The account first (the order every writer of an account's rows keeps), then the sign-in:
    # a row that is only joined to a locked one is read as it was before the wait for the lock
    # (PostgreSQL re-reads just the locked rows), and the sign-in's tries must be read as the
    # competitor who held the lock left them.
    locking = rawsql.lock_rows_of("u", "p") if lock else ""
    return (
        f"SELECT {_PENDING.select('p')}, {_USER.select('u')} "  # noqa: S608 - names from the models
        f"FROM {pending} p JOIN {user} u ON {on} WHERE {condition}{locking}"
    )


def _pending_and_account(row: tuple[object, ...] | None) -> PendingLogin | None:
    if row is None:
        return None
    pending = _PENDING.instance(row[: len(_PENDING)])
    pending.user = _USER.instance(row[len(_PENDING) :])
    return pending


def find(token_hash: str) -> PendingLogin | None:
    """The pending sign-in with this token hash, its ``user`` loaded; None when there is none."""
    return _pending_and_account(rawsql.fetchone(_with_account("token_hash", False), [token_hash]))


def lock(pending_id: int) -> PendingLogin | None:
    """Re-read a pending sign-in and its account inside a transaction, the account's row locked.

    On PostgreSQL the account's row and the sign-in's stay locked (``FOR
    UPDATE``) until the transaction ends; on SQLite the transaction's write
    lock serialises it.
    """
    return _pending_and_account(rawsql.fetchone(_with_account("id", True), [pending_id]))


@cache
def _factor_query() -> str:
    c = rawsql.column
    return (
        f"SELECT {_FACTOR.select('a')} FROM {rawsql.table(Authenticator)} a "  # noqa: S608 - names from the model
        f"WHERE a.{c(Authenticator, 'user')} = %s AND a.{c(Authenticator, 'method')} = %s "
        f"AND a.{c(Authenticator, 'confirmed_at')} IS NOT NULL"
    )


def confirmed_factor(user_id: int, method: str) -> Authenticator | None:
    """The user's confirmed factor of ``method``, if any."""
    row = rawsql.fetchone(_factor_query(), [user_id, method])
    return None if row is None else _FACTOR.instance(row)


@cache
def _spend_statement() -> str:
    c = rawsql.column
    completed = c(PendingLogin, "completed_at")
    return (
        f"UPDATE {rawsql.table(PendingLogin)} SET {completed} = %s "  # noqa: S608 - names from the model
        f"WHERE {c(PendingLogin, 'id')} = %s AND {completed} IS NULL"
    )


def spend(pending_id: int, now: datetime) -> bool:
    """Mark the pending sign-in completed; False when another request did first."""
    return bool(rawsql.execute(_spend_statement(), [rawsql.prep(PendingLogin, "completed_at", now), pending_id]))
