"""Starting and stopping twostep's real server for the benchmark, and reading its memory and CPU.

``gunicorn`` is started exactly as in production, through ``twostep serve``
(gthread workers, access log on).  ``granian`` serves the same WSGI
application (``twostep.wsgi:application``, the same settings and data
directory) with its own worker processes and blocking threads, access log on
too; the data directory was prepared by ``twostep init``, which applied every
migration.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TWOSTEP = [sys.executable, "-m", "twostep.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerKind:
    """A server and the worker/thread counts it runs with."""

    name: str  # "gunicorn" or "granian"
    workers: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.name} {self.workers}x{self.threads}"

    def command(self, port: int) -> list[str]:
        """``twostep serve`` exactly as in production, with this engine and shape."""
        if self.name not in {"gunicorn", "granian"}:
            raise ValueError(f"unknown server {self.name!r}")
        return [
            *TWOSTEP,
            "serve",
            "--engine",
            self.name,
            "--port",
            str(port),
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
        ]


def parse_server(text: str) -> ServerKind:
    """``gunicorn:2x8`` or ``granian:2x2``.

    Raises:
        ValueError: not in that form.
    """
    name, _, shape = text.partition(":")
    workers, _, threads = shape.partition("x")
    return ServerKind(name, int(workers), int(threads))


@dataclass
class Server:
    kind: ServerKind
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Raises RuntimeError when the server exits or does not answer /healthz in time."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.kind.command(self.port),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.log_path.parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind.label} exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200 and len(self.worker_pids()) >= (
                    self.kind.workers
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind.label} did not answer: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def worker_pids(self) -> list[int]:
        """The processes that run the application (the server's child processes)."""
        if self.process is None:
            return []
        return [pid for pid in _descendants(self.process.pid) if _is_python(pid)]

    def memory(self) -> dict[str, object]:
        """RSS in MiB of the master and of each worker."""
        assert self.process is not None
        workers = {pid: rss_mib(pid) for pid in self.worker_pids()}
        return {
            "master_rss_mib": rss_mib(self.process.pid),
            "worker_rss_mib": sorted(workers.values(), reverse=True),
            "max_worker_rss_mib": max(workers.values(), default=0.0),
        }

    def cpu_seconds(self) -> float:
        """User+system CPU seconds used so far by the master and its workers."""
        if self.process is None:
            return 0.0
        return sum(_cpu(pid) for pid in [self.process.pid, *self.worker_pids()])


def _children(pid: int) -> list[int]:
    result: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            result += [int(child) for child in text.split()]
    except OSError:
        pass
    return result


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = _children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += _children(child)
    return found


def _is_python(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # multiprocessing's resource tracker is no worker.
    return bool(cmdline) and b"python" in cmdline[0] and b"resource_tracker" not in b" ".join(cmdline)


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
