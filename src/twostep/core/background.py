"""Work done beside a request rather than in it: security notices and housekeeping.

Both run after the change that called for them has committed, and both may
wait on a mail server (a notice goes to every address of the user, each
attempt bounded by the SMTP timeout; housekeeping retries unsent notices).
In the web server that waiting would hold up the user whose request made the
change, so the WSGI application hands such jobs to one background thread per
worker process.  Everywhere else (the CLI, the test client) they run at once,
in order, as before.

Nothing is lost when a process ends with jobs still queued: a notice stays
in the outbox until it is sent, and the next retry sends it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)

Job = Callable[[], object]

_enabled = False
_jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
_worker: tuple[int, threading.Thread] | None = None
_worker_lock = threading.Lock()


def enable() -> None:
    """From now on, ``run`` hands jobs to a background thread (called once by the WSGI application)."""
    global _enabled
    _enabled = True


def run(job: Job) -> None:
    """Run ``job`` now, or queue it for the background thread once ``enable`` was called.

    Never raises because of the job: a failure is logged.
    """
    if not _enabled:
        _run_logged(job)
        return
    _ensure_worker()
    _jobs.put(job)


def wait_until_idle(timeout: float = 10.0) -> bool:
    """Wait until every queued job has run; False on timeout (for tests and orderly shutdown)."""
    done = threading.Event()
    run(done.set)
    return done.wait(timeout)


def _ensure_worker() -> None:
    # Started on first use in each process, not at import: a server that
    # loads the application before forking its workers would otherwise leave
    # them with a thread that exists only in the parent.
    global _worker
    with _worker_lock:
        if _worker is not None and _worker[0] == os.getpid() and _worker[1].is_alive():
            return
        thread = threading.Thread(target=_work, name="twostep-background", daemon=True)
        thread.start()
        _worker = (os.getpid(), thread)


def _work() -> None:
    while True:
        job = _jobs.get()
        close_old_connections()
        _run_logged(job)
        if _jobs.empty():
            # Jobs are few and far between: no connection of this thread's
            # is left idle (PostgreSQL counts it, and cannot drop or rename
            # a database it is connected to).
            connections.close_all()


def _run_logged(job: Job) -> None:
    try:
        job()
    except Exception:
        logger.exception("background job %s failed", getattr(job, "__qualname__", job))
