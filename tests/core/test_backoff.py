"""The throttles' growing wait."""

from __future__ import annotations

from datetime import timedelta

from twostep.core.backoff import doubling_wait

CEILING = timedelta(minutes=15)


def test_doubles_from_one_second_up_to_the_ceiling() -> None:
    assert [doubling_wait(step, CEILING).total_seconds() for step in range(-1, 11)] == [
        1,
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        900,
    ]


def test_any_step_stays_at_the_ceiling() -> None:
    """Steps whose power no timedelta can hold (2 ** 47 s is past its limit) still give the ceiling."""
    assert {doubling_wait(step, CEILING) for step in (11, 46, 47, 52, 1_000, 10**9)} == {CEILING}
