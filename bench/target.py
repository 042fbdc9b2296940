"""One database's part of the benchmark, in its own process: ``python -m bench.target SPEC.json OUT.json``.

Initialises a data directory with ``twostep init`` (SQLite, or a fresh
PostgreSQL database), seeds the small population, runs every scenario on
every server, then grows the population and measures the second step again
on the server that served it fastest.  Django is configured in this process
with the data directory's settings (see ``bench.dataset``); the servers and
the load generator are separate processes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import dataset, profiling
from bench.scenarios import Bench, Plan
from bench.server import Server, ServerKind


def log(message: str) -> None:
    print(message, flush=True)


def argon2_rate(seconds: float = 4.0) -> dict[str, Any]:
    """Password verifications per second with the production hasher, on all cores, nothing else running.

    Measured with 1 and 2 concurrent verifications (argon2-cffi releases the
    GIL, and each hash already runs its lanes in parallel threads); the
    better is the cores' rate.
    """
    from django.contrib.auth.hashers import check_password, identify_hasher, make_password

    encoded = make_password(dataset.PASSWORD)
    rates = {}
    for workers in (1, 2):
        done = 0
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            while time.perf_counter() - started < seconds / 2 or done < workers * 3:
                results = list(pool.map(lambda _: check_password(dataset.PASSWORD, encoded), range(workers)))
                assert all(results)
                done += workers
        rates[workers] = done / (time.perf_counter() - started)
    parameters = next((part for part in encoded.split("$") if part.startswith("m=")), "")
    return {
        "hasher": identify_hasher(encoded).algorithm,
        "parameters": parameters,
        "rate_by_concurrency": {str(k): round(v, 2) for k, v in rates.items()},
        "verifies_per_second": round(max(rates.values()), 2),
    }


def run_server(
    bench: Bench,
    kind: ServerKind,
    env: dict[str, str],
    data_dir: Path,
    scenarios: list[str],
    profile_dir: Path | None,
) -> dict[str, Any]:
    server = Server(kind, env, data_dir / f"{kind.name}-{kind.workers}x{kind.threads}.log")
    log(f"  {kind.label}: starting")
    server.start()
    bench.server = server
    result: dict[str, Any] = {"server": kind.label, "scenarios": {}}
    try:
        bench.warm_up()
        for name in scenarios:
            load = os.getloadavg()[0]
            started = time.monotonic()
            if name == "healthz":
                summary = bench.healthz()
            elif name == "totp":
                summary = bench.totp()
            elif name == "login":
                # The cores' argon2 rate alone, measured right before, with the server idle.
                result["argon2"] = argon2_rate(bench.plan.argon2_seconds)
                log(f"    argon2 alone: {result['argon2']['verifies_per_second']}/s")
                summary = bench.login()
            elif name == "storm":
                summary = bench.storm()
            elif name == "storm_lock":
                summary = bench.storm(lock=True)
            else:
                raise ValueError(f"unknown scenario {name!r}")
            summary["load_average_before"] = round(load, 2)
            result["scenarios"][name] = summary
            log(f"    {name}: {_brief(summary)} ({time.monotonic() - started:.1f} s)")
        result["memory"] = server.memory()
        log(f"    memory: workers {result['memory']['worker_rss_mib']} MiB")
        if profile_dir is not None and profiling.available():
            result["profiles"] = {}
            # Enough load to outlast the sampling window (5 s) at the rates just measured.
            totp_rate = max(50.0, result["scenarios"].get("totp", {}).get("throughput", 100.0))
            healthz_rate = max(200.0, result["scenarios"].get("healthz", {}).get("throughput", 500.0))
            for name, load_fn in (
                ("totp", lambda: bench.totp(int(totp_rate * 5))),
                ("healthz", lambda: bench.healthz(int(healthz_rate * 5), cross_check=False)),
            ):
                label = f"{database_label(env)}-{kind.name}-{name}"
                summary = profiling.record(server.worker_pids(), 5, profile_dir, label, load_fn)
                result["profiles"][name] = summary
                log(f"    profiled {name}: {summary['samples']} samples")
    finally:
        server.stop()
        bench.server = None
    return result


def database_label(env: dict[str, str]) -> str:
    return "postgres" if env.get("TWOSTEP_DATABASE__URL") else "sqlite"


def _brief(summary: dict[str, Any]) -> str:
    if "throughput" in summary:
        extra = f", {summary['failed']} failed" if summary.get("failed") else ""
        return f"{summary['throughput']}/s p50 {summary['p50_ms']} p99 {summary['p99_ms']} ms{extra}"
    return (
        f"holds={summary['holds']} compared={summary['guesses_compared']}/{summary['guesses_allowed_by_policy']} "
        f"others {summary['others']['throughput']}/s p99 {summary['others']['p99_ms']} ms"
    )


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    database = spec["database"]
    plan = Plan(**spec["plan"])
    servers = [ServerKind(**s) for s in spec["servers"]]
    small, large = spec["sizes"]
    profile_dir = Path(spec["profile_dir"]) if spec.get("profile_dir") else None
    data_dir = Path(tempfile.mkdtemp(prefix=f"twostep-bench-{database}-"))
    result: dict[str, Any] = {"database": database, "plan": asdict(plan), "runs": [], "scale": None}
    try:
        log(f"[{database}] twostep init in {data_dir}")
        env = dataset.initialise(data_dir, database)
        dataset.configure(env)
        dataset.enable_two_factor()
        population = dataset.Population(seed=os.urandom(16))
        seconds = dataset.seed_users(population, small, progress=log)
        result["seed"] = [{"users": small, "seconds": round(seconds, 1)}]
        log(f"  seeded {small} users in {seconds:.1f} s")
        dataset.close_connections()
        bench = Bench(population, plan, log)
        for index, kind in enumerate(servers):
            try:
                run = run_server(bench, kind, env, data_dir, spec["scenarios"], profile_dir if index == 0 else None)
            except Exception:
                run = {"server": kind.label, "scenarios": {}, "error": traceback.format_exc()}
                log(run["error"])
            result["runs"].append(run)
        measured = [run for run in result["runs"] if run["scenarios"].get("totp")]
        if large and large > small and measured:
            best = max(measured, key=lambda run: run["scenarios"]["totp"]["throughput"])
            kind = next(k for k in servers if k.label == best["server"])
            log(f"[{database}] growing to {large} users")
            seconds = dataset.seed_users(population, large, progress=log)
            result["seed"].append({"users": large, "seconds": round(seconds, 1)})
            log(f"  seeded up to {large} users in {seconds:.1f} s")
            dataset.close_connections()
            run = run_server(bench, kind, env, data_dir, ["healthz", "totp"], None)
            run["users"] = large
            result["scale"] = run
    except Exception:
        result["error"] = traceback.format_exc()
        log(result["error"])
    finally:
        out.write_text(json.dumps(result, indent=1))
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            dataset.close_connections()
        if database == "postgres":
            try:
                dataset.drop_postgres_database()
            except Exception as exc:  # the result is written already
                log(f"could not drop the benchmark database: {exc}")
        if not spec.get("keep"):
            shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
