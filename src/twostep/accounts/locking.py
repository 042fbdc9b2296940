"""Which row a transaction locks first, so that two transactions never wait for each other.

On PostgreSQL, two transactions that lock the same rows in opposite orders
deadlock: the server aborts one of them and its request fails ("database
unavailable").  So every transaction that writes several rows of one account
locks the account's row first, as checking a code does (``mfa.login.verify``
locks it with the pending sign-in), and only then its pending sign-ins,
factors, codes, trusted browsers and sessions.  SQLite lets one writer in at a
time, so there the lock changes nothing.
"""

from __future__ import annotations

from twostep.accounts.models import User


def lock_account(user_id: int, *, no_key: bool = False) -> None:
    """Lock the account's row until the transaction ends; call it before any other write.

    ``no_key``: ``FOR NO KEY UPDATE``, the lock an UPDATE of the row takes,
    which still lets rows that refer to the account (a new set-up, an
    auth-log entry) be added meanwhile, by other transactions too.  Without
    it, ``FOR UPDATE``: for a transaction that deletes the account, or that
    must not see such rows appear.

    Raises:
        django.db.transaction.TransactionManagementError: on PostgreSQL, outside a transaction.
    """
    rows = User.objects.filter(pk=user_id)
    (rows.select_for_update(no_key=True) if no_key else rows.select_for_update()).first()
