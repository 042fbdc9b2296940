"""A real twostep server for end-to-end tests: ``twostep init`` then ``twostep serve``.

The server runs exactly as in production (``twostep serve``: granian by default) in a
subprocess, with its own data directory and a free loopback port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TWOSTEP = [sys.executable, "-m", "twostep.cli"]


def bearer(token: str) -> dict[str, str]:
    """The header that presents an API access token."""
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running server; ``cli(...)`` runs twostep commands against its data directory."""

    data_dir: Path
    port: int
    admin_password: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*TWOSTEP, *args], env=self.env, input=input, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"twostep {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        env = {**self.env, **(extra_env or {})}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*TWOSTEP, "serve", "--port", str(self.port), "--workers", "1", "--threads", "8"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"twostep serve exited: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"twostep serve did not answer: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def restart(self, extra_env: Mapping[str, str] | None = None) -> None:
        self.stop()
        self.start(extra_env)


def create_server(data_dir: Path, extra_env: Mapping[str, str] | None = None) -> LiveServer:
    """Initialise ``data_dir`` with ``twostep init`` and return a stopped server for it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TWOSTEP_") and key != "DJANGO_SETTINGS_MODULE"
    }
    env.update({"TWOSTEP_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})})
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH", "")]))
    init = subprocess.run([*TWOSTEP, "init"], env=env, capture_output=True, text=True, timeout=120)
    if init.returncode != 0:
        raise RuntimeError(f"twostep init failed: {init.stderr}")
    match = re.search(r"One-time password[^:]*: (\S+)", init.stdout)
    if match is None:
        raise RuntimeError(f"no admin password in: {init.stdout}")
    return LiveServer(data_dir=data_dir, port=free_port(), admin_password=match.group(1), env=env)
