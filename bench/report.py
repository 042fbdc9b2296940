"""twostep's performance targets (docs/performance.md), judged from one run's results, and the printed table."""

from __future__ import annotations

from typing import Any

MB = 1_000_000 / (1024 * 1024)  # MiB -> MB


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target and per measured configuration: measured value, threshold, PASS/FAIL."""
    rows: list[dict[str, Any]] = []

    def add(target: str, where: str, value: float | None, threshold: str, passed: bool | None, note: str = "") -> None:
        rows.append(
            {
                "target": target,
                "where": where,
                "value": value,
                "threshold": threshold,
                "verdict": "n/a" if passed is None else ("PASS" if passed else "FAIL"),
                "note": note,
            }
        )

    micro = result.get("library")
    if micro:
        add(
            "library TOTP verify vs pyotp",
            "same process",
            micro["ratio"],
            ">= 2.0x",
            micro["ratio"] >= 2.0,
            f"{micro['match_step_current']:,}/s vs {micro['pyotp_current']:,}/s",
        )
    for target in result.get("databases", []):
        database = target["database"]
        if "error" in target and not target.get("runs"):
            add("benchmark", database, None, "runs", False, "error: see JSON")
            continue
        totp_small: dict[str, float] = {}
        cpu_small: dict[str, float] = {}
        for run in target.get("runs", []):
            where = f"{database}, {run['server']}"
            scenarios = run["scenarios"]
            healthz, totp, login = scenarios.get("healthz"), scenarios.get("totp"), scenarios.get("login")
            if healthz and totp:
                ratio = totp["throughput"] / healthz["throughput"] if healthz["throughput"] else 0.0
                add(
                    "second step >= 50% of /healthz",
                    where,
                    round(ratio, 3),
                    ">= 0.50",
                    ratio >= 0.5,
                    f"{totp['throughput']}/s vs {healthz['throughput']}/s; "
                    f"server CPU {healthz.get('server_cpu_ms_per_request')} vs "
                    f"{totp.get('server_cpu_ms_per_request')} ms/request",
                )
                totp_small[run["server"]] = totp["throughput"]
                cpu_small[run["server"]] = totp.get("server_cpu_ms_per_request") or 0.0
            if totp:
                add(
                    "second step p99 < 50 ms (64 concurrent)",
                    where,
                    totp["p99_ms"],
                    "< 50 ms",
                    totp["p99_ms"] < 50 and totp["failed"] == 0,
                    f"{totp['failed']} failed" if totp["failed"] else "",
                )
            argon2 = run.get("argon2", {}).get("verifies_per_second")
            if login and argon2:
                ratio = login["throughput"] / argon2
                add(
                    "full login >= 70% of argon2 alone",
                    where,
                    round(ratio, 3),
                    ">= 0.70",
                    ratio >= 0.7 and login["failed"] == 0,
                    f"{login['throughput']}/s vs {argon2}/s",
                )
            for name in ("storm", "storm_lock"):
                storm = scenarios.get(name)
                if storm:
                    add(
                        "wrong-code storm: lockout holds, others served"
                        if name == "storm"
                        else "storm at the lock: lock holds, others served",
                        where,
                        storm["guesses_compared"],
                        f"<= {storm['guesses_allowed_by_policy']} guesses, 0 sign-ins",
                        storm["holds"],
                        f"others {storm['others']['throughput']}/s p99 {storm['others']['p99_ms']} ms, "
                        f"{storm['others']['failed']} failed; victim signed in {storm['victim_signed_in']}x",
                    )
            memory = run.get("memory")
            if memory:
                worst = round(memory["max_worker_rss_mib"] / MB, 1)
                add("memory < 120 MB RSS per worker", where, worst, "< 120 MB", worst < 120)
        scale = target.get("scale")
        if scale and scale["scenarios"].get("totp"):
            base = totp_small.get(scale["server"])
            big = scale["scenarios"]["totp"]["throughput"]
            ratio = big / base if base else 0.0
            cpu_big = scale["scenarios"]["totp"].get("server_cpu_ms_per_request") or 0.0
            cpu_base = cpu_small.get(scale["server"]) or 0.0
            cpu_note = f"; server CPU {cpu_base} -> {cpu_big} ms/sign-in" if cpu_base and cpu_big else ""
            add(
                f"scale: {scale['users']:,} users within 20% of 1,000",
                f"{database}, {scale['server']}",
                round(ratio, 3),
                ">= 0.80",
                ratio >= 0.8,
                f"{big}/s vs {base}/s{cpu_note}",
            )
            memory = scale.get("memory")
            if memory:
                worst = round(memory["max_worker_rss_mib"] / MB, 1)
                add(
                    "memory < 120 MB RSS per worker",
                    f"{database}, {scale['server']}, {scale['users']:,} users",
                    worst,
                    "< 120 MB",
                    worst < 120,
                )
    return rows


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append(
            "  ".join(
                c.rjust(w) if c.replace(".", "", 1).replace(",", "").isdigit() else c.ljust(w)
                for c, w in zip(row, widths, strict=True)
            )
        )
    return "\n".join(out)


def render(result: dict[str, Any]) -> str:
    """The measurements, then the targets, as plain-text tables."""
    rows = []
    for target in result.get("databases", []):
        runs = list(target.get("runs", []))
        if target.get("scale"):
            runs.append(target["scale"])
        for run in runs:
            users = run.get("users", target.get("seed", [{}])[0].get("users", ""))
            memory = run.get("memory", {})
            rss = ", ".join(f"{r / MB:.0f}" for r in memory.get("worker_rss_mib", []))
            for name, s in run["scenarios"].items():
                if "throughput" in s:
                    rows.append(
                        [
                            target["database"],
                            f"{users:,}" if isinstance(users, int) else users,
                            run["server"],
                            name,
                            s["throughput"],
                            s["p50_ms"],
                            s["p95_ms"],
                            s["p99_ms"],
                            s.get("server_cpu_ms_per_request", ""),
                            s["failed"],
                            rss,
                        ]
                    )
                else:
                    others = s["others"]
                    rows.append(
                        [
                            target["database"],
                            f"{users:,}" if isinstance(users, int) else users,
                            run["server"],
                            f"{name} (others)",
                            others["throughput"],
                            others["p50_ms"],
                            others["p95_ms"],
                            others["p99_ms"],
                            "",
                            others["failed"],
                            rss,
                        ]
                    )
    parts = [
        "Measurements (throughput: successful sign-ins or requests per second; latency in ms; "
        "server CPU per request in ms; RSS per worker in MB after the load)",
        _table(
            ["db", "users", "server", "scenario", "req/s", "p50", "p95", "p99", "cpu ms", "failed", "RSS MB"],
            rows,
        ),
    ]
    extras = []
    for target in result.get("databases", []):
        for run in target.get("runs", []):
            if run.get("argon2"):
                a = run["argon2"]
                extras.append(
                    f"argon2 alone ({target['database']}, before {run['server']}'s login run): "
                    f"{a['verifies_per_second']}/s ({a['hasher']} {a['parameters']}, by concurrency "
                    f"{a['rate_by_concurrency']})"
                )
            h = run["scenarios"].get("healthz", {})
            if h.get("wrk"):
                extras.append(
                    f"load generator ({target['database']}, {run['server']}): /healthz {h['throughput']}/s; "
                    f"wrk on the same URL {h['wrk']['throughput']}/s; client CPU {h['client_cpu_us_per_request']} us "
                    f"per request -> ceiling ~{h['client_ceiling_rps']:,} req/s per client core"
                )
            for name in ("storm", "storm_lock"):
                s = run["scenarios"].get(name)
                if s:
                    extras.append(
                        f"{name} ({target['database']}, {run['server']}): {s['attempts']} attempts on one account in "
                        f"{s['seconds']} s, {s['guesses_compared']} compared with the code (policy allows "
                        f"{s['guesses_allowed_by_policy']}), victim signed in {s['victim_signed_in']}x, "
                        f"locked={s['victim_after']['locked']}"
                    )
        for seed in target.get("seed", []):
            extras.append(f"seeded {seed['users']:,} users on {target['database']} in {seed['seconds']} s")
    micro = result.get("library")
    if micro:
        extras.append(
            f"library: match_step {micro['match_step_current']:,}/s (wrong code {micro['match_step_wrong']:,}/s), "
            f"pyotp {micro['pyotp_current']:,}/s (wrong {micro['pyotp_wrong']:,}/s), hmac.digest alone "
            f"{micro['hmac_digest']:,}/s"
        )
    if extras:
        parts += ["", *extras]
    verdicts = targets(result)
    parts += [
        "",
        "Targets (docs/performance.md, 'Targets and results')",
        _table(
            ["target", "where", "measured", "threshold", "verdict", "detail"],
            [[r["target"], r["where"], r["value"], r["threshold"], r["verdict"], r["note"]] for r in verdicts],
        ),
    ]
    load = result.get("load_average")
    if load:
        parts.append(
            f"\nload average at the start {load[0]:.2f}, at the end {load[1]:.2f} on {result.get('cores')} cores"
            # The figure at the end counts the benchmark's own processes; only
            # the one at the start says whether other work shared the machine.
            + ("  (other work was running: throughput figures are noisy)" if load[0] > 1.0 else "")
        )
    return "\n".join(parts)
