"""Django's SQLite backend, with write transactions queued by a lock file.

SQLite admits one writer at a time.  A connection that finds the database
locked is put to sleep by SQLite for 1, 2, 5, 10, 15, 20, 25 ... ms before
each new try, whatever the holder is doing; under a burst of sign-ins, whose
write transactions last a fraction of a millisecond, those sleeps set the
pace and leave the cores idle.

Here every write transaction (``BEGIN IMMEDIATE``) first takes an exclusive
``flock`` on a file beside the database.  Waiting for it retries every 50 µs
at first, growing to 1 ms, until the connection's ``timeout`` passes, and
then fails as SQLite would ("database is locked").  Each connection opens
the file itself, so the lock excludes the other threads of the process as
well as other processes.  Statements outside transactions do not take it;
SQLite still guards them with its own lock and wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import weakref
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base

FIRST_WAIT = 0.00005
LONGEST_WAIT = 0.001


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only, if it does not exist yet.

    It holds session keys and password hashes; SQLite would create it with
    the process's umask (often world-readable) and gives its ``-wal`` and
    ``-shm`` files the database file's permissions.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class DatabaseWrapper(base.DatabaseWrapper):
    #: The lock file's descriptor.  Closed with the connection, or when the
    #: wrapper is collected: servers retire idle threads without closing
    #: their connections.
    _writer_lock: int | None = None
    _writer_lock_closer: weakref.finalize[Any, Any] | None = None
    _writer_lock_held = False
    #: Seconds to wait for the lock: the connection's ``timeout`` option.
    _writer_lock_timeout = 5.0

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if not self.is_in_memory_db():
            _create_private(str(self.settings_dict["NAME"]))
        connection = super().get_new_connection(conn_params)
        self._writer_lock_timeout = float(conn_params.get("timeout", 5))
        if not self.is_in_memory_db() and self._writer_lock is None:
            self._writer_lock = os.open(f"{self.settings_dict['NAME']}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
            self._writer_lock_closer = weakref.finalize(self, os.close, self._writer_lock)
        return connection

    def _start_transaction_under_autocommit(self) -> None:
        self._lock_writers()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]
        except Exception:
            self._unlock_writers()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        finally:
            self._unlock_writers()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            self._unlock_writers()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]
        finally:
            self._unlock_writers()

    def close(self) -> None:
        super().close()
        if self._writer_lock_closer is not None and self.connection is None:
            self._writer_lock_closer()
            self._writer_lock = self._writer_lock_closer = None
            self._writer_lock_held = False

    def _lock_writers(self) -> None:
        if self._writer_lock is None or self._writer_lock_held:
            return
        deadline = time.monotonic() + self._writer_lock_timeout
        wait = FIRST_WAIT
        while True:
            try:
                fcntl.flock(self._writer_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OperationalError("database is locked") from None
                time.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT)
            else:
                self._writer_lock_held = True
                return

    def _unlock_writers(self) -> None:
        if self._writer_lock_held and self._writer_lock is not None:
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)
            self._writer_lock_held = False
