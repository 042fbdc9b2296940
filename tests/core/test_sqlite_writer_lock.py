"""SQLite write transactions queue on a lock file instead of SQLite's sleeps (twostep.core.sqlite)."""

from __future__ import annotations

import fcntl
import gc
import os
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import OperationalError, connection, connections, transaction

from twostep.core.models import Setting

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the lock file is SQLite's"),
]


@pytest.fixture
def lock_path() -> str:
    connection.ensure_connection()
    return f"{connection.settings_dict['NAME']}.writer-lock"


@pytest.fixture
def outside_holder(lock_path: str) -> Iterator[int]:
    """The lock file opened separately, as another process would."""
    fd = os.open(lock_path, os.O_RDWR)
    yield fd
    os.close(fd)


def held_elsewhere(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def test_lock_is_held_exactly_for_the_transaction(outside_holder: int) -> None:
    """Taken at BEGIN, let go at COMMIT and at ROLLBACK."""
    assert not held_elsewhere(outside_holder)
    with transaction.atomic():
        Setting.objects.create(key="a", value=1)
        assert held_elsewhere(outside_holder)
    assert not held_elsewhere(outside_holder)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        Setting.objects.create(key="b", value=2)
        assert held_elsewhere(outside_holder)
        _ = 1 / 0
    assert not held_elsewhere(outside_holder)
    assert list(Setting.objects.values_list("key", flat=True)) == ["a"]


def test_second_writer_waits_for_the_first_then_goes_on() -> None:
    """A writer that arrives during another's transaction starts right after its commit."""
    started, committed, second_began = threading.Event(), [0.0], [0.0]

    def first() -> None:
        try:
            with transaction.atomic():
                Setting.objects.create(key="first", value=1)
                started.set()
                time.sleep(0.3)
            committed[0] = time.monotonic()
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(5)
    with transaction.atomic():
        second_began[0] = time.monotonic()
        Setting.objects.create(key="second", value=2)
    thread.join()
    assert second_began[0] >= committed[0]
    # Woken within a few milliseconds, not after SQLite's growing sleeps.
    assert second_began[0] - committed[0] < 0.05
    assert set(Setting.objects.values_list("key", flat=True)) == {"first", "second"}


def test_waiting_too_long_fails_as_sqlite_would(outside_holder: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the lock stays taken past the timeout: 'database is locked', and nothing written."""
    connection.ensure_connection()
    monkeypatch.setattr(connections["default"], "_writer_lock_timeout", 0.2)
    fcntl.flock(outside_holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(OperationalError, match="database is locked"), transaction.atomic():
            Setting.objects.create(key="never", value=1)
    finally:
        fcntl.flock(outside_holder, fcntl.LOCK_UN)
    with transaction.atomic():
        Setting.objects.create(key="later", value=1)
    assert list(Setting.objects.values_list("key", flat=True)) == ["later"]


def open_lock_files(path: str) -> int:
    """How many descriptors of this process point at the lock file."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                count += 1
        except OSError:
            continue
    return count


def test_lock_file_of_a_finished_thread_is_closed(lock_path: str) -> None:
    """Servers retire idle threads without closing their connections: nothing may leak."""

    def write(number: int) -> None:
        with transaction.atomic():
            Setting.objects.create(key=f"thread-{number}", value=1)

    before = open_lock_files(lock_path)
    for number in range(3):
        thread = threading.Thread(target=write, args=(number,))
        thread.start()
        thread.join()
    # A finished thread's storage is released shortly after join() returns.
    deadline = time.monotonic() + 5
    while open_lock_files(lock_path) > before and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert open_lock_files(lock_path) == before
    assert Setting.objects.count() == 3
