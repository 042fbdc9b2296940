from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

#: The PostgreSQL advisory lock that ``twostep db upgrade`` (and ``init``'s
#: migration) holds: one bigint, the same on every instance.  Chosen once
#: (the first 8 bytes of SHA-256("twostep db upgrade"), as a signed bigint);
#: never change it, or an old and a new version would not wait for each other.
UPGRADE_LOCK_ID = -3373227551571891749


def pending_migrations() -> list[str]:
    """Names of migrations not yet applied to the default database."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def unknown_migrations() -> list[str]:
    """Migrations applied to the database that this version of twostep does not have.

    A newer twostep upgraded the database: this (older) instance would
    write what the new schema no longer expects.  Only twostep's own apps
    are looked at.
    """
    executor = MigrationExecutor(connection)
    known = set(executor.loader.graph.nodes)
    ours = {app for app, _ in known}
    applied = MigrationRecorder(connection).applied_migrations()
    return sorted(f"{app}.{name}" for app, name in applied if app in ours and (app, name) not in known)


@contextmanager
def upgrade_lock(on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold the database-wide upgrade lock for the block (PostgreSQL; nothing on SQLite).

    A second ``db upgrade`` started meanwhile, from any instance, waits here
    (``on_wait`` is called once before it waits) and then finds nothing to
    do, instead of applying the same migrations at the same time and
    failing half-way with an IntegrityError.  The lock is a session lock:
    it is held across the migrations' own transactions and released when
    the block ends or the connection drops.  SQLite needs none: it is one
    file on one machine, and its write lock already serialises writers.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [UPGRADE_LOCK_ID])
        row = cursor.fetchone()
        if not (row and row[0]):
            on_wait()
            cursor.execute("SELECT pg_advisory_lock(%s)", [UPGRADE_LOCK_ID])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [UPGRADE_LOCK_ID])
