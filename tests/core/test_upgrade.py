"""`twostep db upgrade` with several instances: one at a time, and no older instance on a newer database."""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.db.migrations.recorder import MigrationRecorder

from twostep.core.migrations_state import UPGRADE_LOCK_ID, unknown_migrations


@pytest.mark.django_db(transaction=True)
def test_a_second_upgrade_waits_for_the_first_then_finds_nothing_to_do() -> None:
    """While one `db upgrade` holds the lock (from any instance), another waits instead of migrating alongside."""
    if connection.vendor != "postgresql":
        pytest.skip("the upgrade lock is PostgreSQL's advisory lock; SQLite is one file on one machine")
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    first = psycopg.connect(**params, autocommit=True)  # the first instance's upgrade, still running
    first.execute("SELECT pg_advisory_lock(%s)", [UPGRADE_LOCK_ID])
    out = io.StringIO()
    done = threading.Event()

    def second_upgrade() -> None:
        try:
            call_command("db", "upgrade", stdout=out)
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=second_upgrade)
    thread.start()
    try:
        assert not done.wait(1.5), out.getvalue()
        assert "waiting for it to finish" in out.getvalue()
    finally:
        first.execute("SELECT pg_advisory_unlock(%s)", [UPGRADE_LOCK_ID])
        first.close()
    assert done.wait(30)
    thread.join()
    assert out.getvalue().endswith("Database is up to date.\n")


@pytest.mark.django_db
def test_an_older_instance_refuses_a_database_upgraded_by_a_newer_version() -> None:
    """A migration this version lacks: `serve` refuses, `db status` says so, naming it."""
    from twostep.core.management.commands.serve import Command

    assert unknown_migrations() == []
    MigrationRecorder(connection).record_applied("usersessions", "9999_from_a_newer_twostep")
    assert unknown_migrations() == ["usersessions.9999_from_a_newer_twostep"]
    with pytest.raises(CommandError, match="upgraded by a newer version of twostep"):
        Command().check_deployment(dev=False)
    with pytest.raises(CommandError, match=r"usersessions\.9999_from_a_newer_twostep"):
        call_command("db", "status", stdout=io.StringIO())


@pytest.mark.django_db
def test_the_migrations_describe_the_models() -> None:
    """Every model change has its migration: an upgrade would otherwise leave a column the code needs unmade."""
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit:
        pytest.fail(f"models changed without a migration:\n{out.getvalue()}")
