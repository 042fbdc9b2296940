"""Compare this instance's clock with the database server's.

Instances sharing a PostgreSQL database each check TOTP codes against their
own clock, and each accepted code's time step is stored for all of them (the
replay guard).  One instance whose clock is off refuses its users' correct
codes, and after a sign-in there, the others refuse the next codes too
(``clock_behind_last_use``).  Nothing else compares the instances' clocks:
the database server's clock is the one they all see, so each instance
compares itself with it (at ``twostep serve`` start-up, in ``db status`` and
on the console's Authentication page).  With SQLite there is one machine and
so one clock: nothing to compare.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DatabaseError, connection

from twostep.core import clock

logger = logging.getLogger(__name__)

#: Synchronised clocks (NTP) agree within milliseconds, so a few seconds
#: means one of them is not synchronised.  TOTP codes last a 30-second step
#: and one step of skew either side is allowed: every second of offset is a
#: second less of the margin that absorbs a user typing slowly and their
#: phone's own error.  5 s is well under the step, so the warning comes
#: before codes start failing, and well above what a round trip to the
#: database adds to the measurement.
MAX_OFFSET_SECONDS = 5.0


@dataclass(frozen=True)
class ClockOffset:
    """How far this instance's clock is ahead of the database server's (negative: behind)."""

    seconds: float
    #: Half the query's round trip: the database read its clock at some
    #: moment between the two local readings.
    uncertainty: float


def measure(local_before: float, database_time: float, local_after: float) -> ClockOffset:
    """The offset from a database reading taken between two local ones (Unix timestamps)."""
    middle = (local_before + local_after) / 2
    return ClockOffset(seconds=middle - database_time, uncertainty=max(0.0, (local_after - local_before) / 2))


def offset_warning(offset: ClockOffset | None, threshold: float = MAX_OFFSET_SECONDS) -> str | None:
    """A warning when ``offset`` is surely beyond ``threshold`` seconds, else None."""
    if offset is None or abs(offset.seconds) - offset.uncertainty <= threshold:
        return None
    direction = "ahead of" if offset.seconds > 0 else "behind"
    return (
        f"This instance's clock is {abs(offset.seconds):.0f} s {direction} the database server's "
        f"(more than {threshold:.0f} s): authenticator codes are checked against this instance's clock, "
        "so correct codes may be refused here. Synchronise the clocks of every instance and of the "
        "database server with NTP."
    )


def _database_timestamp() -> float | None:
    """The database server's clock as a Unix timestamp; None on SQLite (one machine, one clock).

    ``clock_timestamp()``, not ``now()``: ``now()`` is the start of the
    current transaction, which may be long past inside one.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())")
        row = cursor.fetchone()
    return float(row[0]) if row else None


def database_offset() -> ClockOffset | None:
    """This instance's clock (``core.clock``, the one codes are checked with) against the database server's.

    None when there is nothing to compare (SQLite) or the database cannot
    be asked: this check only warns, it never stops anything.
    """
    before = clock.timestamp()
    try:
        database_time = _database_timestamp()
    except DatabaseError:
        logger.warning("could not read the database server's clock to compare it with this instance's")
        return None
    after = clock.timestamp()
    return None if database_time is None else measure(before, database_time, after)


def clock_warning() -> str | None:
    """The warning for this instance's clock, if it is off (see ``offset_warning``)."""
    return offset_warning(database_offset())
