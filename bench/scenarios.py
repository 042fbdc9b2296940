"""The load scenarios: each builds load-generator jobs, runs them against a live server, and summarises.

* ``healthz``: GET /healthz, the ceiling of the same server in the same run.
* ``totp``: POST /login/verify for distinct users, each with their current
  code once, from pending sign-ins made in bulk beforehand (rounds of at most
  N users; the replay guard of the users of a round is reset before the next).
* ``login``: the whole sign-in: POST /login (password), then POST
  /login/verify with the code, in one browser (cookie jar).
* ``storm``: wrong codes hammered at one account from many pending sign-ins
  (ending with its *correct* code), while other users sign in beside it.
* ``storm_lock``: the same against an account one failure short of the lock.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import dataset
from bench.loadgen import run_job
from bench.server import Server

CLIENT_IP = "127.0.0.1"


@dataclass
class Plan:
    """How much load each scenario sends."""

    concurrency: int = 64
    healthz_requests: int = 5000
    totp_requests: int = 2000
    login_count: int = 24
    login_concurrency: int = 16
    storm_pendings: int = 80
    storm_attempts: int = 10
    storm_correct: int = 20
    storm_legit: int = 600
    lock_pendings: int = 30
    warmup_requests: int = 300
    client_processes: int = 1
    wrk_seconds: int = 3
    argon2_seconds: float = 6.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            healthz_requests=1500,
            totp_requests=600,
            login_count=6,
            login_concurrency=6,
            storm_pendings=30,
            storm_correct=5,
            storm_legit=300,
            lock_pendings=10,
            warmup_requests=100,
            wrk_seconds=2,
            argon2_seconds=3.0,
        )


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(stats: dict[str, Any], seconds: float | None = None) -> dict[str, Any]:
    """Throughput (successful sequences per second) and latency percentiles of one group."""
    ordered = sorted(stats["latencies"])
    window = seconds if seconds is not None else max(stats["end"] - stats["start"], 1e-9)
    return {
        "sequences": len(ordered),
        "requests": stats["requests"],
        "ok": stats["ok"],
        "failed": stats["failed"],
        "seconds": round(window, 3),
        "throughput": round(stats["ok"] / window, 1) if window else 0.0,
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 1),
        "p95_ms": round(percentile(ordered, 0.95) * 1000, 1),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
        "max_ms": round((ordered[-1] if ordered else 0) * 1000, 1),
        "statuses": stats["statuses"],
        "errors": stats["errors"],
    }


def _merge(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    merged: dict[str, Any] = {"latencies": [], "ok": 0, "failed": 0, "requests": 0, "statuses": {}, "errors": {}}
    seconds = 0.0
    for result in results:
        stats = result["groups"][name]
        merged["latencies"] += stats["latencies"]
        for key in ("ok", "failed", "requests"):
            merged[key] += stats[key]
        for key in ("statuses", "errors"):
            for k, v in stats[key].items():
                merged[key][k] = merged[key].get(k, 0) + v
        if stats["latencies"]:
            seconds += stats["end"] - stats["start"]
    summary = summarise(merged, seconds)
    summary["rounds"] = len(results)
    return summary


class Bench:
    """Runs the scenarios against one server on one populated database."""

    def __init__(self, population: dataset.Population, plan: Plan, log: Callable[[str], None] = print) -> None:
        self.population = population
        self.plan = plan
        self.log = log
        self.csrf = dataset.csrf_secret()
        self.server: Server | None = None

    # ----------------------------------------------------------------- plumbing

    def _job(self, groups: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.server is not None
        return {"host": "127.0.0.1", "port": self.server.port, "groups": groups}

    def _run(self, groups: list[dict[str, Any]]) -> dict[str, Any]:
        """Run one job; add the client's and the server's CPU time to the result."""
        assert self.server is not None
        dataset.close_connections()
        server_cpu = self.server.cpu_seconds()
        result = run_job(self._job(groups), self.plan.client_processes)
        result["server_cpu"] = self.server.cpu_seconds() - server_cpu
        return result

    def _cookies(self, browser: dataset.Browser) -> dict[str, str]:
        return dict(browser.cookies)

    def _verify_step(self, index: int, *, code: Any = None, expect: Any = (302, "/account")) -> dict[str, Any]:
        return {
            "method": "POST",
            "path": "/login/verify",
            "form": [["code", code or {"totp": self.population.secret(index)}], ["csrfmiddlewaretoken", self.csrf]],
            "expect": list(expect) if expect else None,
        }

    def _sample(self, count: int, exclude: set[int] = frozenset()) -> list[int]:  # type: ignore[assignment]
        available = self.population.size - len(exclude)
        picked: list[int] = []
        while len(picked) < min(count, available):
            for index in random.sample(range(1, self.population.size + 1), min(count, available) - len(picked)):
                if index not in exclude and index not in picked:
                    picked.append(index)
        return picked

    def _cost(self, result: dict[str, Any], requests: int) -> dict[str, Any]:
        client_cpu = result["client_cpu"]
        return {
            "server_cpu_ms_per_request": round(result["server_cpu"] / max(requests, 1) * 1000, 3),
            "client_cpu_us_per_request": round(client_cpu / max(requests, 1) * 1e6, 1),
            # Requests per second one core of the load generator could send.
            "client_ceiling_rps": round(requests / client_cpu) if client_cpu else None,
        }

    # ----------------------------------------------------------------- scenarios

    def warm_up(self) -> None:
        """Load every code path once in every worker thread (not measured)."""
        self._run(
            [
                {
                    "name": "warmup",
                    "concurrency": 16,
                    "sequences": [{"steps": [{"path": "/healthz"}], "repeat": self.plan.warmup_requests // 16}] * 16,
                }
            ]
        )
        users = self._sample(min(64, self.population.size))
        browsers = dataset.pending_browsers(self.population, users, self.csrf, CLIENT_IP)
        self._run(
            [
                {
                    "name": "warmup",
                    "concurrency": 16,
                    "sequences": [
                        {"cookies": self._cookies(b), "steps": [self._verify_step(b.index)]} for b in browsers
                    ],
                }
            ]
        )
        dataset.reset_replay_guard(self.population, users)

    def healthz(self, total: int | None = None, *, cross_check: bool = True) -> dict[str, Any]:
        concurrency = self.plan.concurrency
        repeat = max(1, (total or self.plan.healthz_requests) // concurrency)
        step = {"path": "/healthz", "expect": [200, None]}
        result = self._run(
            [
                {
                    "name": "healthz",
                    "concurrency": concurrency,
                    "sequences": [{"steps": [step], "repeat": repeat} for _ in range(concurrency)],
                }
            ]
        )
        summary = summarise(result["groups"]["healthz"])
        summary.update(self._cost(result, summary["requests"]))
        summary["wrk"] = self._wrk("/healthz") if cross_check else None
        return summary

    def _wrk(self, path: str) -> dict[str, Any] | None:
        """The same endpoint through wrk (C, one thread), to show the Python client is not the limit."""
        if shutil.which("wrk") is None or self.server is None:
            return None
        output = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{self.plan.concurrency}",
                f"-d{self.plan.wrk_seconds}s",
                "--latency",
                f"{self.server.url}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=self.plan.wrk_seconds + 30,
        ).stdout
        rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
        if rps is None:
            return None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
        return {
            "throughput": float(rps.group(1)),
            "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 1) if p99 else None,
        }

    def totp(self, total: int | None = None) -> dict[str, Any]:
        """Second-step verification, distinct users per round, each with their current code once."""
        total = total or self.plan.totp_requests
        per_round = min(total, self.population.size)
        results = []
        server_cpu = client_cpu = 0.0
        done = 0
        while done < total:
            users = self._sample(min(per_round, total - done))
            browsers = dataset.pending_browsers(self.population, users, self.csrf, CLIENT_IP)
            result = self._run(
                [
                    {
                        "name": "totp",
                        "concurrency": self.plan.concurrency,
                        "sequences": [
                            {"cookies": self._cookies(b), "steps": [self._verify_step(b.index)]} for b in browsers
                        ],
                    }
                ]
            )
            results.append(result)
            server_cpu += result["server_cpu"]
            client_cpu += result["client_cpu"]
            dataset.reset_replay_guard(self.population, users)
            done += len(users)
        summary = _merge(results, "totp")
        summary.update(self._cost({"server_cpu": server_cpu, "client_cpu": client_cpu}, summary["requests"]))
        return summary

    def login(self) -> dict[str, Any]:
        """The whole sign-in in one browser: password step, then the code."""
        users = self._sample(self.plan.login_count)
        sequences = []
        for index in users:
            sequences.append(
                {
                    "cookies": {self._csrf_cookie(): self.csrf},
                    "steps": [
                        {
                            "method": "POST",
                            "path": "/login",
                            "form": [
                                ["username", dataset.username(index)],
                                ["password", dataset.PASSWORD],
                                ["csrfmiddlewaretoken", self.csrf],
                            ],
                            "expect": [302, "/login/verify"],
                        },
                        self._verify_step(index),
                    ],
                }
            )
        result = self._run([{"name": "login", "concurrency": self.plan.login_concurrency, "sequences": sequences}])
        dataset.reset_replay_guard(self.population, users)
        summary = summarise(result["groups"]["login"])
        summary.update(self._cost(result, summary["requests"]))
        return summary

    def _csrf_cookie(self) -> str:
        from django.conf import settings

        return str(settings.CSRF_COOKIE_NAME)

    def storm(self, *, lock: bool = False) -> dict[str, Any]:
        """Wrong codes against one account from many pending sign-ins, other users signing in beside it.

        With ``lock`` the account starts one failure short of the lock (as
        after hours of throttled guessing) and the storm ends with the
        account's *correct* current code, which must be refused too.  Reports how many guesses the
        server actually compared with the code, what the account's state is
        afterwards, and how the other users were served meanwhile.
        """
        from django.conf import settings

        security = settings.CONFIG.security
        victim = self._sample(1)[0]
        if lock:
            dataset.set_failures(self.population, victim, security.second_step_lock_after - 1)
        before = dataset.account_state(self.population, victim)
        pendings = self.plan.lock_pendings if lock else self.plan.storm_pendings
        # Once the account is locked even its correct code must be refused.  (While it is only
        # throttled, the correct code is rightly accepted as soon as the delay has run out.)
        correct = self.plan.storm_correct if lock else 0
        attacker = dataset.pending_browsers(self.population, [victim] * (pendings + correct), self.csrf, CLIENT_IP)
        secret = self.population.secret(victim)
        wrong = {"wrong_totp": secret}
        sequences = [
            {
                "cookies": self._cookies(browser),
                "steps": [self._verify_step(victim, code=wrong, expect=None)] * self.plan.storm_attempts,
            }
            for browser in attacker[:pendings]
        ]
        # Sent only once the wrong codes have all been answered: sent with them,
        # a correct code may be the first one the server evaluates, and is then
        # rightly accepted before any failure could lock the account.
        finale = [
            {
                "cookies": self._cookies(browser),
                "steps": [self._verify_step(victim, code={"totp": secret}, expect=None)],
            }
            for browser in attacker[pendings:]
        ]
        bystanders = self.plan.storm_legit // 2 if lock else self.plan.storm_legit
        legit_users = self._sample(min(bystanders, self.population.size - 1), exclude={victim})
        legit = dataset.pending_browsers(self.population, legit_users, self.csrf, CLIENT_IP)
        half = self.plan.concurrency // 2
        started = time.monotonic()
        result = self._run(
            [
                {"name": "attacker", "concurrency": half, "sequences": sequences},
                {
                    "name": "others",
                    "concurrency": half,
                    "sequences": [{"cookies": self._cookies(b), "steps": [self._verify_step(b.index)]} for b in legit],
                },
            ]
        )
        statuses = dict(result["groups"]["attacker"]["statuses"])
        requests = result["groups"]["attacker"]["requests"]
        if finale:
            last = self._run([{"name": "attacker", "concurrency": half, "sequences": finale}])
            for key, n in last["groups"]["attacker"]["statuses"].items():
                statuses[key] = statuses.get(key, 0) + n
            requests += last["groups"]["attacker"]["requests"]
        elapsed = time.monotonic() - started
        after = dataset.account_state(self.population, victim)
        dataset.reset_replay_guard(self.population, [*legit_users, victim])
        dataset.set_failures(self.population, victim, 0)
        signed_in = sum(n for key, n in statuses.items() if key == "302 /account")
        compared = sum(
            n - before["second_step_results"].get(reason, 0)
            for reason, n in after["second_step_results"].items()
            if reason in {"wrong_code", "reused_code", "success"}
        )
        allowed = _allowed_guesses(
            security.second_step_delay_after,
            security.second_step_lock_after,
            before["failures"],
            elapsed,
        )
        others = summarise(result["groups"]["others"])
        return {
            "attempts": requests,
            "attacker_statuses": statuses,
            "attacker_throughput": round(requests / max(elapsed, 1e-9), 1),
            "victim_signed_in": signed_in,
            "guesses_compared": compared,
            "guesses_allowed_by_policy": allowed,
            "victim_before": before,
            "victim_after": after,
            "others": others,
            "seconds": round(elapsed, 2),
            "holds": signed_in == 0
            and compared <= allowed
            and (after["locked"] if lock else True)
            and others["failed"] == 0,
        }


def _allowed_guesses(delay_after: int, lock_after: int, failures: int, seconds: float) -> int:
    """How many codes the throttling policy lets an attacker try in ``seconds``, from ``failures``.

    Below ``delay_after`` failures tries are free; then each failure imposes
    a wait of 2, 4, 8, ... seconds (at most 15 minutes); at ``lock_after`` the
    account locks.
    """
    allowed = 0
    budget = seconds
    while failures < lock_after:
        allowed += 1
        failures += 1
        if failures >= lock_after:
            break
        wait = 0 if failures < delay_after else min(900, 2 ** (failures - delay_after + 1))
        if budget < wait:
            break
        budget -= wait
    return allowed
