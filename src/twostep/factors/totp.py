"""HOTP (RFC 4226) and TOTP (RFC 6238) with replay-safe step matching.

Pure functions: the caller passes the time and remembers the last accepted
step.  ``match_step`` returns the matched *step*, which is what the caller
stores to refuse a second use of the same code.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

DEFAULT_DIGITS = 6
DEFAULT_PERIOD = 30
DEFAULT_DIGEST = "sha1"
SECRET_BYTES = 20  # 160 bits, RFC 4226 R6 recommendation
MIN_SECRET_BYTES = 16

_POWERS = {6: 10**6, 7: 10**7, 8: 10**8}
_PACK_COUNTER = struct.Struct(">Q").pack
_PACK_VALUE = struct.Struct(">I").pack
_UNPACK_AT = struct.Struct(">I").unpack_from


def hotp(key: bytes, counter: int, digits: int = DEFAULT_DIGITS, digest: str = DEFAULT_DIGEST) -> str:
    """The HOTP value of ``key`` at ``counter``, zero-padded to ``digits``.

    Raises:
        ValueError: ``counter`` is negative or ``digits`` is not 6, 7 or 8.
    """
    if counter < 0:
        raise ValueError("counter must not be negative")
    mac = hmac.digest(key, _PACK_COUNTER(counter), digest)
    return _truncate(mac, digits)


def _truncate(mac: bytes, digits: int) -> str:
    # RFC 4226 §5.3: the offset is the low nibble of the *last* byte, which
    # matters for SHA-256/512 whose MACs are longer than 20 bytes.
    offset = mac[-1] & 0x0F
    binary = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(binary % _POWERS[digits]).zfill(digits)


def time_step(unix_time: float, period: int = DEFAULT_PERIOD) -> int:
    """The TOTP counter T for ``unix_time`` (T0 = 0).

    Raises:
        ValueError: ``unix_time`` is before the epoch.
    """
    if unix_time < 0:
        raise ValueError("time before T0")
    return int(unix_time // period)


def totp(
    key: bytes,
    unix_time: float,
    digits: int = DEFAULT_DIGITS,
    period: int = DEFAULT_PERIOD,
    digest: str = DEFAULT_DIGEST,
) -> str:
    """The TOTP value of ``key`` at ``unix_time``."""
    return hotp(key, time_step(unix_time, period), digits, digest)


def is_well_formed(code: str, digits: int = DEFAULT_DIGITS) -> bool:
    """True when ``code`` is exactly ``digits`` ASCII digits: no spaces, no other scripts."""
    # isascii() first: isdigit() alone admits other scripts' digits and superscripts.
    return len(code) == digits and code.isascii() and code.isdigit()


def match_step(
    key: bytes,
    code: str,
    unix_time: float,
    *,
    skew: int = 1,
    digits: int = DEFAULT_DIGITS,
    period: int = DEFAULT_PERIOD,
    digest: str = DEFAULT_DIGEST,
) -> int | None:
    """Return the step in ``T-skew .. T+skew`` whose code equals ``code``, or None.

    Every candidate is computed and compared in constant time, with no early
    return, so the response time does not tell which step (if any) matched.
    A malformed ``code`` never matches.
    """
    if not is_well_formed(code, digits):
        return None
    # Compare numbers as fixed-width bytes: cheaper than formatting each
    # candidate as text, and just as constant-time.
    submitted = _PACK_VALUE(int(code))
    current = time_step(unix_time, period)
    power = _POWERS[digits]
    # The key is absorbed once; each candidate continues from a copy.
    keyed = hmac.new(key, digestmod=digest).copy
    pack_counter = _PACK_COUNTER
    unpack_at = _UNPACK_AT
    compare = hmac.compare_digest
    matched: int | None = None
    for step in range(current - skew if current > skew else 0, current + skew + 1):
        candidate = keyed()
        candidate.update(pack_counter(step))
        mac = candidate.digest()
        value = (unpack_at(mac, mac[-1] & 0x0F)[0] & 0x7FFFFFFF) % power
        if compare(_PACK_VALUE(value), submitted) and matched is None:
            matched = step
    return matched


#: Where ``device_clock_offset`` looks: every step within ten minutes either way, and
#: whole hours up to fourteen either way (a clock set by hand in the wrong time zone),
#: each give or take one step.
NEAR_STEPS = 20
FAR_HOURS = 14


def _offsets(skew: int, period: int) -> list[int]:
    """The step offsets ``device_clock_offset`` tries, nearest first, outside ``-skew .. skew``."""
    near = range(-NEAR_STEPS, NEAR_STEPS + 1)
    per_hour = 3600 // period
    far = (
        sign * hours * per_hour + nudge for hours in range(1, FAR_HOURS + 1) for sign in (1, -1) for nudge in (-1, 0, 1)
    )
    return sorted({offset for offset in (*near, *far) if abs(offset) > skew}, key=lambda offset: (abs(offset), offset))


def device_clock_offset(
    key: bytes,
    code: str,
    unix_time: float,
    *,
    skew: int = 1,
    digits: int = DEFAULT_DIGITS,
    period: int = DEFAULT_PERIOD,
    digest: str = DEFAULT_DIGEST,
) -> int | None:
    """How many seconds ahead of ``unix_time`` the clock that made ``code`` seems to run, or None.

    For a code ``match_step`` refused: it looks only beyond ``T-skew .. T+skew``,
    at the steps of a device whose clock is off by up to ten minutes or by whole
    hours (the nearest match wins; negative means the device is behind).  It is
    a diagnosis, never a reason to accept the code.  About 120 steps are tried,
    so a mistyped code matches one by chance about once in 8 000 times: callers
    should say the clock *seems* off.  A malformed ``code`` gives None.
    """
    if not is_well_formed(code, digits):
        return None
    current = time_step(unix_time, period)
    for offset in _offsets(skew, period):
        step = current + offset
        if step >= 0 and hmac.compare_digest(hotp(key, step, digits, digest), code):
            return offset * period
    return None


def generate_secret(nbytes: int = SECRET_BYTES) -> bytes:
    """Fresh random key material from ``secrets``.

    Raises:
        ValueError: fewer than MIN_SECRET_BYTES bytes requested.
    """
    if nbytes < MIN_SECRET_BYTES:
        raise ValueError(f"a TOTP secret needs at least {MIN_SECRET_BYTES} bytes")
    return secrets.token_bytes(nbytes)


def encode_secret(key: bytes) -> str:
    """Base32 without padding, as authenticator apps expect."""
    return base64.b32encode(key).decode("ascii").rstrip("=")


def decode_secret(text: str) -> bytes:
    """Inverse of ``encode_secret``; tolerant of lower case, spaces and missing padding.

    Raises:
        ValueError: ``text`` is not Base32.
    """
    cleaned = text.replace(" ", "").upper()
    cleaned += "=" * (-len(cleaned) % 8)
    try:
        return base64.b32decode(cleaned)
    except (ValueError, base64.binascii.Error) as exc:  # type: ignore[attr-defined]
        raise ValueError("not a Base32 secret") from exc


def key_uri(
    key: bytes,
    account: str,
    issuer: str,
    *,
    digits: int = DEFAULT_DIGITS,
    period: int = DEFAULT_PERIOD,
    digest: str = DEFAULT_DIGEST,
) -> str:
    """The ``otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER`` provisioning URI.

    Follows the Google Authenticator Key URI format: issuer both in the label
    and as a parameter, label parts percent-encoded, secret unpadded.

    Raises:
        ValueError: ``issuer`` contains a colon.
    """
    if ":" in issuer:
        raise ValueError("the issuer must not contain a colon")
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = urlencode(
        {
            "secret": encode_secret(key),
            "issuer": issuer,
            "algorithm": digest.upper(),
            "digits": digits,
            "period": period,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"
