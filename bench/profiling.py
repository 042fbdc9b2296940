"""Sampling the server's workers with py-spy while a scenario runs, and summarising where time goes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def available() -> bool:
    return Path(PY_SPY).exists() or shutil.which("py-spy") is not None


def record(pids: list[int], seconds: int, out_dir: Path, label: str, load: Callable[[], Any]) -> dict[str, Any]:
    """Sample every worker in ``pids`` for ``seconds`` while ``load()`` runs; return the summary.

    Writes the collapsed stacks (speedscope and flamegraph.pl read them) to
    ``out_dir/profile-<label>-<pid>.txt``.
    """
    command = PY_SPY if Path(PY_SPY).exists() else "py-spy"
    procs = []
    files = []
    for pid in pids:
        path = out_dir / f"profile-{label}-{pid}.txt"
        files.append(path)
        procs.append(
            subprocess.Popen(
                [
                    command,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(seconds),
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    load()
    for proc in procs:
        try:
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return summarise([path for path in files if path.exists()])


def _function(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "path/to/file.py:name"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{name}"


def summarise(paths: list[Path], top: int = 25) -> dict[str, Any]:
    """Inclusive and self sample shares per function, over all request-handling stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_function(frame) for frame in stack.split(";")]
            # Only stacks that are handling a request (not idle pollers).
            if not any("handle_request" in f or "WSGIHandler.__call__" in f or "__call__" in f for f in frames):
                continue
            total += count
            for name in set(frames):
                inclusive[name] += count
            own[frames[-1]] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "inclusive_pct": share(inclusive),
        "self_pct": share(own),
        "files": [str(p) for p in paths],
    }


def interesting(
    summary: dict[str, Any], prefixes: tuple[str, ...] = ("twostep/", "django/")
) -> list[tuple[str, float]]:
    """The inclusive list restricted to twostep's and Django's own functions."""
    return [(name, pct) for name, pct in summary["inclusive_pct"] if name.startswith(prefixes)]
