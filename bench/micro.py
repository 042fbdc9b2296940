"""Library micro-benchmark: ``twostep.factors.totp.match_step`` against pyotp, in the same process.

Both check the same codes for the same keys at the same time, with one step
of skew either side (pyotp's ``valid_window=1``).  Three cases: the current
code (the common case: pyotp returns after two HMACs, match_step always
computes three), a wrong code (three HMACs each), and pyotp including the
construction of its ``TOTP`` object from the Base32 secret, which is how a
server holding the secret uses it per request.  ``hmac.digest`` alone is the
floor.  Each figure is the best of several short runs (the machine is shared).
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from typing import Any

KEYS = 512


def _rate(loop: Callable[[int], None], n: int, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        loop(n)
        best = max(best, n / (time.perf_counter() - started))
    return best


def run(n: int = 100_000, repeats: int = 5) -> dict[str, Any]:
    import pyotp

    from twostep.factors import totp

    keys = [os.urandom(20) for _ in range(KEYS)]
    secrets = [totp.encode_secret(k) for k in keys]
    now = time.time()
    current = [totp.totp(k, now) for k in keys]
    wrong = [f"{(int(c) + 500_000) % 1_000_000:06d}" for c in current]
    objects = [pyotp.TOTP(s) for s in secrets]
    assert all(totp.match_step(keys[i], current[i], now) is not None for i in range(KEYS))
    assert all(objects[i].verify(current[i], for_time=now, valid_window=1) for i in range(KEYS))

    def ours(codes: list[str]) -> Callable[[int], None]:
        def loop(count: int) -> None:
            match = totp.match_step
            for i in range(count):
                j = i % KEYS
                match(keys[j], codes[j], now)

        return loop

    def theirs(codes: list[str]) -> Callable[[int], None]:
        def loop(count: int) -> None:
            for i in range(count):
                j = i % KEYS
                objects[j].verify(codes[j], for_time=now, valid_window=1)

        return loop

    def ours_from_secret(count: int) -> None:
        match, decode = totp.match_step, totp.decode_secret
        for i in range(count):
            j = i % KEYS
            match(decode(secrets[j]), current[j], now)

    def theirs_from_secret(count: int) -> None:
        make = pyotp.TOTP
        for i in range(count):
            j = i % KEYS
            make(secrets[j]).verify(current[j], for_time=now, valid_window=1)

    def hmac_only(count: int) -> None:
        digest = hmac.digest
        message = b"\0" * 8
        for i in range(count):
            digest(keys[i % KEYS], message, "sha1")

    cases: dict[str, Callable[[int], None]] = {
        "match_step_current": ours(current),
        "pyotp_current": theirs(current),
        "match_step_wrong": ours(wrong),
        "pyotp_wrong": theirs(wrong),
        "match_step_from_secret": ours_from_secret,
        "pyotp_from_secret": theirs_from_secret,
        "hmac_digest": hmac_only,
    }
    # Interleaved, best of ``repeats``: every case sees the same share of the other load on the machine.
    rates = dict.fromkeys(cases, 0.0)
    for _ in range(repeats):
        for name, loop in cases.items():
            rates[name] = max(rates[name], _rate(loop, n, 1))
    result: dict[str, Any] = {k: round(v) for k, v in rates.items()}
    result["ratio_current"] = round(rates["match_step_current"] / rates["pyotp_current"], 2)
    result["ratio_wrong"] = round(rates["match_step_wrong"] / rates["pyotp_wrong"], 2)
    result["ratio_from_secret"] = round(rates["match_step_from_secret"] / rates["pyotp_from_secret"], 2)
    # The target's figure: the common case, a current code, library call against library call.
    result["ratio"] = result["ratio_current"]
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
