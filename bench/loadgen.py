"""The load generator: a small HTTP/1.1 keep-alive client on asyncio (uvloop when installed).

Run as ``python -m bench.loadgen JOB.json OUT.json`` in its own process(es), so
that the server under test and the client never share an interpreter.  A job
is a list of *groups*; each group has a concurrency (its number of open
connections) and a list of *sequences*: one request, or several that share a
cookie jar (the password step then the code step of one sign-in).  Each
connection takes the next sequence of its group until none are left, so every
sequence runs exactly once and the run stops by itself.

Codes are computed when the request is sent (``{"totp": KEY}``), with a
stand-alone RFC 6238 implementation, so long runs never send a stale code and
the server is checked against an implementation other than its own.

It records one latency per sequence (first byte sent to last byte of the last
response) and checks each response's status and ``Location`` against what the
job expects.  Its own CPU time is measured by the parent (``run_job``), which
gives the client's ceiling: requests per CPU-second.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from base64 import b32decode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- codes


def _key(secret: str) -> bytes:
    return b32decode(secret + "=" * (-len(secret) % 8))


def _hotp(key: bytes, counter: int) -> str:
    mac = hmac.digest(key, struct.pack(">Q", counter), "sha1")
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset : offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


def current_code(secret: str, now: float | None = None) -> str:
    return _hotp(_key(secret), int((time.time() if now is None else now) // 30))


def wrong_code(secret: str, now: float | None = None) -> str:
    """A well-formed code that is not valid in any accepted step (T-1..T+1, and T+2 for margin)."""
    key = _key(secret)
    step = int((time.time() if now is None else now) // 30)
    valid = {_hotp(key, s) for s in range(step - 1, step + 3)}
    while True:
        code = f"{random.randrange(1_000_000):06d}"
        if code not in valid:
            return code


def _value(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if "totp" in spec:
        return current_code(spec["totp"])
    if "wrong_totp" in spec:
        return wrong_code(spec["wrong_totp"])
    raise ValueError(f"unknown form value {spec!r}")


def _urlencode(pairs: list[tuple[str, str]]) -> bytes:
    from urllib.parse import quote_plus

    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs).encode()


# --------------------------------------------------------------------------- HTTP


class ConnectionClosed(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: bytes


class _Protocol(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self._head: tuple[int, dict[str, str], list[str], int, bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionClosed(str(exc or "closed by server")))

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._parse():
            pass

    def _parse(self) -> bool:
        if self._head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            del self.buffer[: end + 4]
            status = int(lines[0].split(" ", 2)[1])
            headers: dict[str, str] = {}
            cookies: list[str] = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                value = value.strip()
                if name == "set-cookie":
                    cookies.append(value)
                else:
                    headers[name] = value
            chunked = headers.get("transfer-encoding", "").lower() == "chunked"
            self._head = (status, headers, cookies, int(headers.get("content-length", "0")), chunked)
        status, headers, cookies, length, chunked = self._head
        if chunked:
            body = self._dechunk()
            if body is None:
                return False
        else:
            if len(self.buffer) < length:
                return False
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
        self._head = None
        if headers.get("connection", "").lower() == "close" and self.transport is not None:
            self.transport.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Response(status, headers, cookies, body))
        return bool(self.buffer)

    def _dechunk(self) -> bytes | None:
        body = bytearray()
        position = 0
        while True:
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(self.buffer[position:line_end]).split(b";")[0], 16)
            start = line_end + 2
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n", start)
                if trailer_end < 0:
                    return None
                del self.buffer[: trailer_end + 2]
                return bytes(body)
            if len(self.buffer) < start + size + 2:
                return None
            body += self.buffer[start : start + size]
            position = start + size + 2


# --------------------------------------------------------------------------- the run


@dataclass
class GroupStats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    start: float = float("inf")
    end: float = 0.0


def _request(host: str, method: str, path: str, jar: dict[str, str], form: bytes | None, origin: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: twostep-bench/1", "Accept: text/html"]
    if jar:
        lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in jar.items()))
    if form is not None:
        lines += [
            f"Origin: {origin}",
            "Content-Type: application/x-www-form-urlencoded",
            f"Content-Length: {len(form)}",
        ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (form or b"")


def _update_jar(jar: dict[str, str], cookies: list[str]) -> None:
    for cookie in cookies:
        first, *attributes = cookie.split(";")
        name, _, value = first.partition("=")
        deleted = any(a.strip().lower() == "max-age=0" for a in attributes)
        if deleted:
            jar.pop(name.strip(), None)
        else:
            jar[name.strip()] = value.strip()


async def _connect(host: str, port: int) -> _Protocol:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Protocol, host, port)
    return protocol


async def _worker(job: dict[str, Any], queue: list[dict[str, Any]], stats: GroupStats) -> None:
    host, port = job["host"], job["port"]
    authority = f"{host}:{port}"
    origin = f"http://{authority}"
    conn: _Protocol | None = None
    while queue:
        sequence = queue.pop()
        repeat = int(sequence.get("repeat", 1))
        for _ in range(repeat):
            jar = dict(sequence.get("cookies", {}))
            started = time.perf_counter()
            stats.start = min(stats.start, started)
            good = True
            for index, step in enumerate(sequence["steps"]):
                form = None
                if "form" in step:
                    form = _urlencode([(k, _value(v)) for k, v in step["form"]])
                data = _request(authority, step.get("method", "GET"), step["path"], jar, form, origin)
                try:
                    if conn is None or conn.closed:
                        conn = await _connect(host, port)
                    response = await conn.send(data)
                except (OSError, ConnectionClosed) as exc:
                    conn = None
                    stats.requests += 1
                    stats.errors[f"step {index}: {type(exc).__name__}"] = (
                        stats.errors.get(f"step {index}: {type(exc).__name__}", 0) + 1
                    )
                    good = False
                    break
                stats.requests += 1
                location = response.headers.get("location")
                key = f"{response.status} {location}" if location else str(response.status)
                stats.statuses[key] = stats.statuses.get(key, 0) + 1
                _update_jar(jar, response.cookies)
                expect = step.get("expect")
                if expect is not None and (
                    response.status != expect[0] or (expect[1] is not None and location != expect[1])
                ):
                    reason = f"step {index}: got {key}, expected {expect[0]} {expect[1] or ''}".strip()
                    stats.errors[reason] = stats.errors.get(reason, 0) + 1
                    good = False
                    break
            finished = time.perf_counter()
            stats.end = max(stats.end, finished)
            stats.latencies.append(finished - started)
            if good:
                stats.ok += 1
            else:
                stats.failed += 1
    if conn is not None and conn.transport is not None:
        conn.transport.close()


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    tasks = []
    all_stats: dict[str, GroupStats] = {}
    for group in job["groups"]:
        stats = all_stats[group["name"]] = GroupStats()
        # Connections pop from the end: reverse so that sequences run in the given order.
        queue = list(reversed(group["sequences"]))
        tasks += [asyncio.create_task(_worker(job, queue, stats)) for _ in range(group["concurrency"])]
    await asyncio.gather(*tasks)
    return {
        name: {
            "latencies": s.latencies,
            "ok": s.ok,
            "failed": s.failed,
            "requests": s.requests,
            "statuses": s.statuses,
            "errors": s.errors,
            "start": s.start if s.latencies else 0.0,
            "end": s.end,
        }
        for name, s in all_stats.items()
    }


def main(argv: list[str]) -> int:
    job_path, out_path = argv
    job = json.loads(Path(job_path).read_text())
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is in the bench extra
        runner = asyncio.run
    result = runner(_run(job))
    Path(out_path).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- parent side


def _split(job: dict[str, Any], processes: int) -> list[dict[str, Any]]:
    """Deal each group's sequences and connections out to ``processes`` client processes."""
    parts = []
    for index in range(processes):
        groups = []
        for group in job["groups"]:
            sequences = group["sequences"][index::processes]
            concurrency = group["concurrency"] // processes + (1 if index < group["concurrency"] % processes else 0)
            if sequences and concurrency:
                groups.append({**group, "sequences": sequences, "concurrency": concurrency})
        if groups:
            parts.append({**job, "groups": groups})
    return parts


def run_job(job: dict[str, Any], processes: int = 1, timeout: float = 600) -> dict[str, Any]:
    """Run ``job`` in ``processes`` separate client processes; merge their results.

    Returns per group: latencies, ok/failed counts, status counts, the time
    window, and ``client_cpu``: user+system CPU seconds the client processes used.
    """
    with tempfile.TemporaryDirectory(prefix="twostep-loadgen-") as tmp:
        procs = []
        for index, part in enumerate(_split(job, processes)):
            job_file = Path(tmp) / f"job{index}.json"
            out_file = Path(tmp) / f"out{index}.json"
            job_file.write_text(json.dumps(part))
            proc = subprocess.Popen([sys.executable, "-m", "bench.loadgen", str(job_file), str(out_file)])
            procs.append((proc, out_file))
        cpu = 0.0
        deadline = time.monotonic() + timeout
        for proc, _ in procs:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    cpu += usage.ru_utime + usage.ru_stime
                    break
                if time.monotonic() > deadline:
                    for other, _ in procs:
                        other.kill()
                    raise TimeoutError("the load generator did not finish in time")
                time.sleep(0.02)
            if proc.returncode != 0:
                raise RuntimeError(f"the load generator failed with exit code {proc.returncode}")
        merged: dict[str, dict[str, Any]] = {}
        for _, out_file in procs:
            for name, stats in json.loads(out_file.read_text()).items():
                into = merged.setdefault(
                    name,
                    {
                        "latencies": [],
                        "ok": 0,
                        "failed": 0,
                        "requests": 0,
                        "statuses": {},
                        "errors": {},
                        "start": float("inf"),
                        "end": 0.0,
                    },
                )
                into["latencies"] += stats["latencies"]
                for key in ("ok", "failed", "requests"):
                    into[key] += stats[key]
                for key in ("statuses", "errors"):
                    for k, v in stats[key].items():
                        into[key][k] = into[key].get(k, 0) + v
                if stats["latencies"]:
                    into["start"] = min(into["start"], stats["start"])
                    into["end"] = max(into["end"], stats["end"])
    return {"groups": merged, "client_cpu": cpu, "client_processes": len(procs)}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
