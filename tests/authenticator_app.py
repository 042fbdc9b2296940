"""An authenticator app for tests that drive a real server: codes it accepts now, no step twice."""

from __future__ import annotations

import time

from twostep.factors import totp

#: Seconds before a step ends when its predecessor is no longer offered: a code
#: typed into a browser must still be inside the window when the server checks it.
MARGIN = 10


class AuthenticatorApp:
    """Holds one key and shows a code for a step the server accepts and has not seen.

    The server accepts the previous, the current and the next step (skew 1) and
    refuses a step already used, so three codes follow each other without
    waiting; only a fourth within the same 30 seconds waits for the clock.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.last_step = -1

    def code(self) -> str:
        while True:
            now = time.time()
            current = totp.time_step(now)
            left = (current + 1) * totp.DEFAULT_PERIOD - now
            earliest = current - 1 if left > MARGIN else current
            wanted = max(earliest, self.last_step + 1)
            if wanted <= current + 1:
                self.last_step = wanted
                return totp.hotp(self.key, wanted)
            time.sleep(left + 0.05)


def a_wrong_code(key: bytes) -> str:
    """Six digits that no step the server accepts now (the previous, the current, the next) has for ``key``.

    A fixed "000000" is the right code one time in about 330 000: often
    enough, over a suite with dozens of wrong tries, to fail now and then.
    """
    from twostep.core import clock

    now = clock.timestamp()
    accepted = {totp.totp(key, now + totp.DEFAULT_PERIOD * offset) for offset in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)
