"""The pure recovery-code functions: entropy, formatting for reading aloud, parsing what people type."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from twostep.factors import recovery


def test_a_code_carries_at_least_64_bits() -> None:
    """16 symbols of a 32-symbol alphabet: 80 bits, above the 64-bit floor (SEC-10)."""
    assert len(set(recovery.ALPHABET)) == 32
    assert recovery.LENGTH * math.log2(len(recovery.ALPHABET)) >= 64
    code = recovery.generate_code()
    assert len(code) == recovery.LENGTH and set(code) <= set(recovery.ALPHABET)


def test_symbols_are_spread_over_the_whole_alphabet() -> None:
    """Many codes use every symbol, each roughly equally often (a crude check that nothing is biased or stuck)."""
    counts = dict.fromkeys(recovery.ALPHABET, 0)
    for _ in range(2000):
        for char in recovery.generate_code():
            counts[char] += 1
    expected = 2000 * recovery.LENGTH / 32
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values()), counts


def test_a_set_is_ten_distinct_codes() -> None:
    """A set has ten codes and no two are the same."""
    codes = recovery.generate_set()
    assert len(codes) == 10 == len(set(codes))


def test_formatting_groups_by_four() -> None:
    """Codes are shown as four groups of four, for reading aloud."""
    assert recovery.format_code("K7QM3XPD9WTRH2BF") == "K7QM-3XPD-9WTR-H2BF"


def test_typing_variations_are_accepted() -> None:
    """Lower case, spaces, dashes and the look-alikes I, L, O are read as the code meant."""
    assert recovery.normalise("k7qm-3xpd 9wtr-h2bf") == "K7QM3XPD9WTRH2BF"
    assert recovery.normalise("IL0O 0000 0000 0000") == "1100000000000000"


def test_impossible_input_is_refused_before_any_lookup() -> None:
    """Wrong length, symbols outside the alphabet (U), other scripts and huge input give None."""
    for typed in [
        "",
        "K7QM-3XPD-9WTR-H2B",
        "K7QM-3XPD-9WTR-H2BFX",
        "U7QM-3XPD-9WTR-H2BF",
        "\uff2b7QM3XPD9WTRH2BF",  # a full-width K
        "A" * 10_000,
    ]:
        assert recovery.normalise(typed) is None, typed


@given(st.text(max_size=80))
def test_normalise_never_raises(typed: str) -> None:
    """Any text either normalises to a well-formed code or is refused; nothing raises."""
    result = recovery.normalise(typed)
    assert result is None or (len(result) == recovery.LENGTH and set(result) <= set(recovery.ALPHABET))


def test_round_trip() -> None:
    """Every generated code, formatted, reads back as itself."""
    for code in recovery.generate_set():
        assert recovery.normalise(recovery.format_code(code)) == code


def test_text_file_lists_the_codes() -> None:
    """The download has the account, and every code formatted on its own line."""
    codes = recovery.generate_set()
    text = recovery.as_text(codes, account="alice", issuer="twostep", created="2026-01-01 10:00 UTC")
    assert "alice" in text.splitlines()[0]
    assert [line for line in text.splitlines() if len(line) == 19] == [recovery.format_code(c) for c in codes]
