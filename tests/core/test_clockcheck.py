"""This instance's clock against the database server's."""

from __future__ import annotations

import logging
import time

import pytest
from django.db import connection

from twostep.core import clockcheck
from twostep.core.clockcheck import MAX_OFFSET_SECONDS, ClockOffset, database_offset, measure, offset_warning


def test_measure_takes_the_middle_of_the_round_trip() -> None:
    """The database read its clock between the two local readings: their middle, give or take half the trip."""
    offset = measure(100.0, 95.0, 102.0)
    assert offset == ClockOffset(seconds=6.0, uncertainty=1.0)
    assert measure(100.0, 100.5, 101.0) == ClockOffset(seconds=0.0, uncertainty=0.5)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (ClockOffset(0.2, 0.01), None),
        (ClockOffset(MAX_OFFSET_SECONDS, 0.0), None),
        (ClockOffset(6.0, 0.5), "6 s ahead of"),
        (ClockOffset(-300.0, 0.01), "300 s behind"),
        # 7 s measured over a 4-second round trip could be 5 s: not surely off, no warning.
        (ClockOffset(7.0, 2.0), None),
        (None, None),
    ],
)
def test_offset_warning_only_when_surely_beyond_the_threshold(offset: ClockOffset | None, expected: str | None) -> None:
    warning = offset_warning(offset)
    if expected is None:
        assert warning is None
    else:
        assert warning is not None and expected in warning and "NTP" in warning


@pytest.mark.django_db
def test_database_offset_only_on_postgresql() -> None:
    """SQLite is one machine with one clock: nothing to compare.  PostgreSQL's clock here agrees with ours."""
    offset = database_offset()
    if connection.vendor == "postgresql":
        assert offset is not None and abs(offset.seconds) - offset.uncertainty < 1
    else:
        assert offset is None


@pytest.mark.django_db
def test_serve_warns_at_start_up_when_the_clock_is_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`twostep serve` logs a WARNING (it still starts: a clock is fixed with NTP, not by refusing to serve)."""
    from twostep.core.management.commands.serve import Command

    monkeypatch.setattr(clockcheck, "_database_timestamp", lambda: time.time() - 300)  # this instance 5 min ahead
    with caplog.at_level(logging.WARNING):
        Command().check_deployment(dev=False)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("300 s ahead of the database server's" in message for message in warnings)
    caplog.clear()
    monkeypatch.setattr(clockcheck, "_database_timestamp", time.time)
    with caplog.at_level(logging.WARNING):
        Command().check_deployment(dev=False)
    assert not [record for record in caplog.records if "clock" in record.getMessage()]


@pytest.mark.django_db
def test_housekeeping_tells_of_a_clock_that_drifted_while_running(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not only at start: the housekeeping that runs beside requests logs a WARNING when the clock is off."""
    from twostep.core.housekeeping import prune

    with caplog.at_level(logging.WARNING):
        prune()
    assert not [r for r in caplog.records if "NTP" in r.getMessage()]
    monkeypatch.setattr(clockcheck, "_database_timestamp", lambda: time.time() + 120)  # this instance 2 min behind
    with caplog.at_level(logging.WARNING):
        prune()
    assert any("behind" in r.getMessage() and "NTP" in r.getMessage() for r in caplog.records)
