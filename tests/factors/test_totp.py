"""TOTP and HOTP maths against the RFC vectors (security.md §3, OTP-01..09)."""

from __future__ import annotations

import base64
import hmac
import re
from unittest import mock
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from twostep.factors import totp

RFC_SECRET = b"12345678901234567890"
SEEDS = {
    "sha1": RFC_SECRET,
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
HOTP_VALUES = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
HOTP_TRUNCATED = [
    0x4C93CF18, 0x41397EEA, 0x82FEF30, 0x66EF7655, 0x61C5938A,
    0x33C083D4, 0x7256C032, 0x4E5B397, 0x2823443F, 0x2679DC69,
]  # fmt: skip
TOTP_ROWS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize("counter", range(10))
def test_hotp_rfc4226_appendix_d(counter: int) -> None:
    """HOTP matches RFC 4226 Appendix D: truncated value and 6-digit code for counters 0-9."""
    mac = hmac.digest(RFC_SECRET, counter.to_bytes(8, "big"), "sha1")
    offset = mac[-1] & 0x0F
    assert int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF == HOTP_TRUNCATED[counter]
    assert totp.hotp(RFC_SECRET, counter) == HOTP_VALUES[counter]


def test_hotp_extra_digit_lengths() -> None:
    """7 and 8 digit HOTP values keep their leading digits."""
    assert totp.hotp(RFC_SECRET, 7, digits=7) == "2162583"
    assert totp.hotp(RFC_SECRET, 8, digits=8) == "73399871"


@pytest.mark.parametrize(("unix_time", "sha1", "sha256", "sha512"), TOTP_ROWS)
def test_totp_rfc6238_appendix_b(unix_time: int, sha1: str, sha256: str, sha512: str) -> None:
    """All 18 RFC 6238 rows, with the per-algorithm seeds, 8 digits (OTP-02)."""
    for digest, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        assert totp.totp(SEEDS[digest], unix_time, digits=8, digest=digest) == expected


def test_sha256_seed_is_not_silently_reused() -> None:
    """The 20-byte SHA-1 seed with SHA-256 gives the known wrong value, proving seeds are not padded (OTP-02)."""
    assert totp.totp(RFC_SECRET, 59, digits=8, digest="sha256") == "32247374"


def test_truncation_uses_last_byte_of_long_macs() -> None:
    """The dynamic offset comes from the last byte, also for 32- and 64-byte MACs (OTP-03)."""
    for size in (32, 64):
        mac = bytes(range(size - 1)) + bytes([0x05])
        expected = (int.from_bytes(mac[5:9], "big") & 0x7FFFFFFF) % 10**6
        assert totp._truncate(mac, 6) == f"{expected:06d}"


def test_leading_zeros_preserved() -> None:
    """Codes keep leading zeros (081804, 005924)."""
    assert totp.totp(RFC_SECRET, 1111111109) == "081804"
    assert totp.totp(RFC_SECRET, 1234567890) == "005924"


def test_step_arithmetic() -> None:
    """TOTP at time 30c equals HOTP(c); the step boundary falls at multiples of 30; times before T0 fail (OTP-05)."""
    assert totp.totp(RFC_SECRET, 29) == "755224"
    assert totp.totp(RFC_SECRET, 30) == "287082"
    assert totp.totp(RFC_SECRET, 59) == "287082"
    assert totp.totp(RFC_SECRET, 60) == "359152"
    assert totp.totp(RFC_SECRET, 20000000000, digits=8) == "65353130"
    with pytest.raises(ValueError, match="T0"):
        totp.time_step(-1)


@pytest.mark.parametrize(
    ("code", "expected_offset"),
    [("186057", None), ("980357", -1), ("005924", 0), ("590587", 1), ("240500", None)],
)
def test_window_edges_skew_one(code: str, expected_offset: int | None) -> None:
    """At t=1234567890 with skew 1, T-1..T+1 match and T-2, T+2 do not (security.md §3.3, OTP-06, FLT-07)."""
    current = 1234567890 // 30
    matched = totp.match_step(RFC_SECRET, code, 1234567890, skew=1)
    assert matched == (None if expected_offset is None else current + expected_offset)


def test_window_skew_zero_accepts_only_current() -> None:
    """With skew 0 only the current step's code matches (OTP-06)."""
    accepted = [c for c in ("980357", "005924", "590587") if totp.match_step(RFC_SECRET, c, 1234567890, skew=0)]
    assert accepted == ["005924"]


@pytest.mark.parametrize(
    "device_offset", [-14 * 3600 - 30, -3600, -600, -95, -60, 60, 90, 185, 600, 3600 + 30, 2 * 3600, 14 * 3600]
)
def test_device_clock_offset_finds_a_clock_minutes_or_whole_hours_off(device_offset: int) -> None:
    """A code from a device whose clock is off by up to ten minutes, or by whole hours (a wrong time zone set by
    hand) give or take a step, tells how far off it is, to the step."""
    now = 1234567890
    code = totp.totp(RFC_SECRET, now + device_offset)
    assert totp.match_step(RFC_SECRET, code, now) is None
    found = totp.device_clock_offset(RFC_SECRET, code, now)
    assert found is not None and abs(found - device_offset) < totp.DEFAULT_PERIOD


def test_device_clock_offset_says_nothing_inside_the_window_or_beyond_its_reach() -> None:
    """Codes the window accepts, codes of clocks off by 30 minutes or 15 hours, and malformed codes give None."""
    now = 1234567890
    for seconds in (-30, 0, 30, 1800, -1800, 15 * 3600, -15 * 3600):
        assert totp.device_clock_offset(RFC_SECRET, totp.totp(RFC_SECRET, now + seconds), now) is None, seconds
    assert totp.device_clock_offset(RFC_SECRET, "12345", now) is None
    assert totp.device_clock_offset(RFC_SECRET, "\uff10" * 6, now) is None


def test_all_candidates_compared_without_early_return() -> None:
    """Every window candidate goes through compare_digest, even when the first one matches (ENUM-06)."""
    with mock.patch("twostep.factors.totp.hmac.compare_digest", wraps=hmac.compare_digest) as compare:
        assert totp.match_step(RFC_SECRET, "980357", 1234567890, skew=1) is not None
    assert compare.call_count == 3


@pytest.mark.parametrize(
    "variant",
    [
        " 005924",
        "005924 ",
        "005 924",
        "\uff10\uff10\uff15\uff19\uff12\uff14",
        "\u0660\u0660\u0665\u0669\u0662\u0664",
        "5924",
        "0059240",
        "",
        "00592a",
        "+05924",
        "\n005924",
    ],
)
def test_malformed_codes_never_match(variant: str) -> None:
    """Only exactly six ASCII digits can match: padded, full-width, Arabic-Indic, short or long codes fail (FUZZ-01, FUZZ-02, FUZZ-03)."""
    assert totp.match_step(RFC_SECRET, variant, 1234567890) is None


@given(st.text(max_size=12))
def test_arbitrary_text_is_well_formed_only_if_six_ascii_digits(text: str) -> None:
    """is_well_formed accepts exactly the strings matching ^[0-9]{6}$."""
    expected = len(text) == 6 and all(c in "0123456789" for c in text)
    assert totp.is_well_formed(text) is expected


def test_secret_generation() -> None:
    """Secrets are 20 random bytes, 32 Base32 characters, unique; fewer than 16 bytes is refused (OTP-07)."""
    encoded = {totp.encode_secret(totp.generate_secret()) for _ in range(10_000)}
    assert len(encoded) == 10_000
    assert {len(item) for item in encoded} == {32}
    with pytest.raises(ValueError, match="at least 16"):
        totp.generate_secret(15)


def test_secret_round_trip_tolerates_spacing_and_case() -> None:
    """Manual keys typed with spaces or lower case decode to the same bytes."""
    key = totp.generate_secret()
    text = totp.encode_secret(key)
    assert "=" not in text
    spaced = " ".join(text[i : i + 4] for i in range(0, len(text), 4)).lower()
    assert totp.decode_secret(spaced) == key
    with pytest.raises(ValueError, match="Base32"):
        totp.decode_secret("not base32!")


@pytest.mark.parametrize("account", ["john.doe@example.com", "a:b", "a&b#c d", "jürgen"])
def test_key_uri_round_trips(account: str) -> None:
    """The otpauth URI has issuer prefix and parameter, unpadded secret, defaults; labels round-trip (OTP-08)."""
    uri = totp.key_uri(RFC_SECRET, account, "ACME Co")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    issuer, _, name = parts.path.lstrip("/").partition(":")
    assert unquote(issuer) == "ACME Co"
    assert unquote(name) == account
    query = parse_qs(parts.query)
    assert query["secret"] == [base64.b32encode(RFC_SECRET).decode().rstrip("=")]
    assert query["issuer"] == ["ACME Co"]
    assert query["algorithm"] == ["SHA1"] and query["digits"] == ["6"] and query["period"] == ["30"]


def test_issuer_with_colon_refused() -> None:
    """A colon in the issuer would break the label, so it is refused (OTP-08)."""
    with pytest.raises(ValueError, match="colon"):
        totp.key_uri(RFC_SECRET, "x", "bad:issuer")


def test_factor_maths_does_not_import_django() -> None:
    """The factor module is plain Python."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(totp))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "django" not in imported and "random" not in imported


@given(
    st.binary(min_size=20, max_size=20),
    st.integers(min_value=60, max_value=2**40),
    st.text(max_size=10).filter(lambda text: not totp.is_well_formed(text)),
)
def test_round_trip_and_window_for_random_secrets_and_times(key: bytes, unix_time: int, garbage: str) -> None:
    """A fresh code matches its own step; T+2 never matches except by an equal code; malformed text never (FUZZ-10)."""
    current = totp.time_step(unix_time)
    code = totp.totp(key, unix_time)
    assert re.fullmatch(r"[0-9]{6}", code)
    matched = totp.match_step(key, code, unix_time, skew=1)
    assert matched is not None and totp.hotp(key, matched) == code
    future = totp.totp(key, unix_time + 60)
    later = totp.match_step(key, future, unix_time, skew=1)
    assert later is None or (later <= current + 1 and totp.hotp(key, later) == future)
    assert totp.match_step(key, garbage, unix_time, skew=1) is None


@given(
    st.text(min_size=1, max_size=40).filter(lambda text: ":" not in text),
    st.text(min_size=1, max_size=40),
)
@example("ACME & Co", "a:b&secret=AAAA#x y")
def test_key_uri_labels_survive_any_text(issuer: str, account: str) -> None:
    """Any issuer and account round-trip through urllib, add no parameter and leave no raw colon inside (FUZZ-11)."""
    uri = totp.key_uri(RFC_SECRET, account, issuer)
    parts = urlsplit(uri)
    label = parts.path.lstrip("/")
    assert label.count(":") == 1
    encoded_issuer, _, encoded_account = label.partition(":")
    assert unquote(encoded_issuer) == issuer and unquote(encoded_account) == account
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    assert sorted(query) == ["algorithm", "digits", "issuer", "period", "secret"]
    assert query["issuer"] == [issuer]
    assert query["secret"] == [base64.b32encode(RFC_SECRET).decode().rstrip("=")]
