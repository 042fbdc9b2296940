"""``python -m bench.inprocess``: a second-step sign-in measured inside one process.

No server and no sockets: the WSGI application is called directly, so the
figure is the CPU the application itself spends per request, which moves far
less between runs on a shared machine than requests per second do.  For a
data directory made by ``twostep init`` (SQLite or a fresh PostgreSQL
database) with N users seeded as ``make bench`` seeds them, it prints:

* CPU time per ``GET /healthz`` and per ``POST /login/verify`` that ends in
  ``302 /account`` (each user's own pending sign-in and current code, once),
  and their ratio;
* the SQL statements of one sign-in, as Django's ``CaptureQueriesContext``
  sees them;
* with ``--profile FILE``, a ``cProfile`` dump of the sign-ins (open it with
  ``python -m pstats FILE`` or snakeviz).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import dataset
from bench.loadgen import current_code


def _caller(application: Callable[..., Any]) -> Callable[..., tuple[str, dict[str, str]]]:
    def call(path: str, method: str = "GET", body: bytes = b"", cookies: dict[str, str] | None = None) -> Any:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_USER_AGENT": "twostep-bench/1",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
        }
        if cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer.update(status=status, headers=dict(headers))

        chunks = application(environ, start_response)
        b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        return answer["status"], answer["headers"]

    return call


def measure(database: str, users: int, profile: Path | None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Seed ``users`` users on ``database``, then time /healthz and one sign-in per user.

    Raises:
        RuntimeError: ``twostep init`` failed, or a sign-in did not end in ``302 /account``.
    """
    work = Path(tempfile.mkdtemp(prefix=f"twostep-inprocess-{database}-"))
    try:
        dataset.configure(dataset.initialise(work / "data", database))
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from twostep.wsgi import application

        dataset.enable_two_factor()
        population = dataset.Population(seed=secrets.token_bytes(16))
        dataset.seed_users(population, users, progress=lambda _: None)
        csrf = dataset.csrf_secret()
        browsers = dataset.pending_browsers(population, list(range(1, users + 1)), csrf, "127.0.0.1")
        call = _caller(application)

        def sign_in(browser: dataset.Browser) -> None:
            body = f"code={current_code(population.secret(browser.index))}&csrfmiddlewaretoken={csrf}".encode()
            status, headers = call("/login/verify", "POST", body, browser.cookies)
            if not status.startswith("302") or headers.get("Location") != "/account":
                raise RuntimeError(f"sign-in of user {browser.index} answered {status} {headers.get('Location')}")

        warm, traced, rest = browsers[:50], browsers[50], browsers[51:]
        for _ in range(300):
            call("/healthz")
        for browser in warm:
            sign_in(browser)

        started = time.process_time()
        healthz_count = 3000
        for _ in range(healthz_count):
            call("/healthz")
        healthz_ms = (time.process_time() - started) / healthz_count * 1000

        with CaptureQueriesContext(connection) as captured:
            sign_in(traced)
        statements = [query["sql"] for query in captured.captured_queries]

        profiler = cProfile.Profile() if profile else None
        started = time.process_time()
        if profiler:
            profiler.enable()
        for browser in rest:
            sign_in(browser)
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        sign_in_ms = (time.process_time() - started) / len(rest) * 1000
        dataset.close_connections()
        result = {
            "database": database,
            "users": users,
            "healthz_cpu_ms": round(healthz_ms, 3),
            "sign_in_cpu_ms": round(sign_in_ms, 3),
            "ratio": round(healthz_ms / sign_in_ms, 3),
            "statements": statements,
            "profiled": bool(profile),
        }
        log(f"{database}: /healthz {healthz_ms:.3f} ms, second-step sign-in {sign_in_ms:.3f} ms of CPU per request")
        log(f"  ratio {healthz_ms / sign_in_ms:.3f}{' (under cProfile)' if profile else ''}")
        log(f"  {len(statements)} SQL statements in one sign-in:")
        for sql in statements:
            log(f"    {sql[:110]}")
        return result
    finally:
        if database == "postgres":
            dataset.drop_postgres_database()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--users", type=int, default=2000, help="Users seeded, and sign-ins measured (default 2000).")
    parser.add_argument("--profile", type=Path, help="Write a cProfile dump of the sign-ins here.")
    args = parser.parse_args(argv)
    if args.users < 200:
        parser.error("--users must be at least 200")
    measure(args.database, args.users, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
