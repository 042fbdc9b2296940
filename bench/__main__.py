"""``python -m bench`` (``make bench``): twostep's performance targets, measured on this machine.

Runs the library micro-benchmark in this process, then one process per
database (``bench.target``) that initialises a data directory, seeds users,
starts the real servers and drives them from a separate load-generator
process.  Prints the measurements and the verdict per target and writes
everything as JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import micro
from bench.report import render, targets
from bench.scenarios import Plan
from bench.server import parse_server

RESULTS = Path(__file__).resolve().parent / "results"
#: Recommended for 2 cores (see docs/performance.md): one process per core, 4 threads each.
DEFAULT_SERVERS = "granian:2x4,gunicorn:2x4,granian:2x1"
SCENARIOS = "healthz,totp,login,storm,storm_lock"


def _sizes(text: str) -> tuple[int, int]:
    small, _, large = text.partition(",")
    return int(small), int(large or 0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small populations and short runs, for development.")
    parser.add_argument("--databases", default="sqlite,postgres", help="Comma-separated: sqlite, postgres.")
    parser.add_argument(
        "--servers", default=DEFAULT_SERVERS, help="Comma-separated NAME:WORKERSxTHREADS (gunicorn, granian)."
    )
    parser.add_argument("--scenarios", default=SCENARIOS, help=f"Comma-separated subset of {SCENARIOS}.")
    parser.add_argument("--sqlite-users", type=_sizes, default=None, help="SMALL,LARGE (default 1000,100000).")
    parser.add_argument("--postgres-users", type=_sizes, default=None, help="SMALL,LARGE (default 1000,1000000).")
    parser.add_argument("--no-profile", action="store_true", help="Do not sample the workers with py-spy.")
    parser.add_argument("--no-library", action="store_true", help="Skip the library micro-benchmark.")
    parser.add_argument("--client-processes", type=int, default=1, help="Load-generator processes (default 1).")
    parser.add_argument("--keep", action="store_true", help="Keep the data directories (printed) for inspection.")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default bench/results/<time>.json).")
    return parser.parse_args(argv)


def _postgres_reachable() -> bool:
    import psycopg

    from bench.dataset import POSTGRES_ADMIN_URL

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def run_database(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``bench.target`` for one database in its own process; return its results."""
    with tempfile.TemporaryDirectory(prefix="twostep-bench-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWOSTEP_") and k != "DJANGO_SETTINGS_MODULE"}
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
        subprocess.run([sys.executable, "-m", "bench.target", str(spec_file), str(out_file)], env=env, cwd=root)
        if not out_file.exists():
            return {"database": spec["database"], "error": "the benchmark process wrote no result", "runs": []}
        return dict(json.loads(out_file.read_text()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = Plan.quick() if args.quick else Plan()
    plan.client_processes = args.client_processes
    sizes = {
        "sqlite": args.sqlite_users or ((1000, 5000) if args.quick else (1000, 100_000)),
        "postgres": args.postgres_users or ((1000, 20_000) if args.quick else (1000, 1_000_000)),
    }
    servers = [parse_server(s) for s in args.servers.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s]
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS / f"bench-{stamp}.json"
    profile_dir = None if args.no_profile else RESULTS / f"profiles-{stamp}"
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "servers": [asdict(s) for s in servers],
        "plan": asdict(plan),
        "databases": [],
    }
    load_start = os.getloadavg()[0]
    if not args.no_library:
        print("library: match_step vs pyotp ...", flush=True)
        result["library"] = micro.run(*((20_000, 5) if args.quick else (30_000, 20)))
        print(f"  ratio {result['library']['ratio']}x", flush=True)
    for database in [d for d in args.databases.split(",") if d]:
        if database == "postgres" and not _postgres_reachable():
            print("postgres: not reachable at 127.0.0.1:5432, skipped", flush=True)
            result["databases"].append({"database": "postgres", "error": "PostgreSQL not reachable", "runs": []})
            continue
        spec = {
            "database": database,
            "plan": asdict(plan),
            "servers": [asdict(s) for s in servers],
            "sizes": list(sizes[database]),
            "scenarios": scenarios,
            "quick": args.quick,
            "keep": args.keep,
            "profile_dir": str(profile_dir) if profile_dir else None,
        }
        result["databases"].append(run_database(spec))
    result["load_average"] = [load_start, os.getloadavg()[0]]
    result["seconds"] = round(time.monotonic() - started, 1)
    result["targets"] = targets(result)
    out.write_text(json.dumps(result, indent=1))
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=1))
    print()
    print(render(result))
    print(f"\nwritten to {out} (and bench/results/latest.json) in {result['seconds']} s")
    errors = [d for d in result["databases"] if d.get("error")]
    for database in errors:
        print(f"\n{database['database']}: {database['error']}", file=sys.stderr)
    # Missed targets are findings, not a broken harness: exit 0 unless something did not run.
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
