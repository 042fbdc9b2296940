"""Locks on names rather than rows, for checks that count the rows of several accounts."""

from __future__ import annotations

import hashlib

from django.db import connection
from django.db.transaction import TransactionManagementError


def _key(name: str) -> int:
    """``name`` as the signed 64-bit number PostgreSQL's advisory locks take."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def lock_names(*names: str) -> None:
    """Hold a lock on each of ``names``, in the order given, until the transaction ends.

    Another transaction locking one of the same names waits for this one.
    On PostgreSQL: transaction-scoped advisory locks.  On SQLite nothing is
    needed: transactions begin IMMEDIATE, so its one writer already queues them.
    Callers take names in one order (e.g. after the account's row, a
    destination before an address), so that two of them never wait for each other.

    Raises:
        django.db.transaction.TransactionManagementError: outside a transaction, on PostgreSQL.
    """
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        # Outside a transaction the lock would end with the statement that took it.
        raise TransactionManagementError("lock_names() needs a transaction")
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_key(name)])
