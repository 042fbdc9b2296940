"""Running several requests' worth of work at the same moment, for the races tests look for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from django.db import connection


def at_once(tasks: Sequence[Callable[[], str]]) -> list[str]:
    """Run every task in its own thread, all released together; return their results.

    Each thread has its own database connection (closed when it is done), so
    the tasks meet in the database as concurrent requests would.  A task
    turns the refusals it expects into a result of its own; anything else it
    raises fails the test with its traceback, the result then missing.
    """
    barrier = threading.Barrier(len(tasks))
    results: list[str] = []
    lock = threading.Lock()

    def run(task: Callable[[], str]) -> None:
        try:
            barrier.wait()
            result = task()
        finally:
            connection.close()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
