"""``twostep audit tail|prune``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from django.core.management.base import CommandParser

from twostep.audit.models import AuthEvent
from twostep.audit.query import EventFilter, describe, events
from twostep.core.housekeeping import prune
from twostep.core.management.base import NounCommand


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least 1")
    return value


class Command(NounCommand):
    help = "The auth log."
    verbs = {
        "tail": "Print the latest auth events (and follow new ones with --follow).",
        "prune": "Delete events older than [audit] retention_days, and expired sign-ins, codes and sessions.",
    }

    def add_verb_arguments(self, verb: str, parser: CommandParser) -> None:
        if verb == "tail":
            parser.add_argument("-n", "--lines", type=_positive, default=20, help="How many events (default 20).")
            parser.add_argument("--user", default="", help="Only this username.")
            parser.add_argument("--outcome", choices=["success", "failure", "info"], default="")
            parser.add_argument("-f", "--follow", action="store_true", help="Keep printing new events.")

    def handle_tail(self, lines: int, user: str, outcome: str, follow: bool, **_: Any) -> None:
        criteria = EventFilter(username=user, outcome=outcome)
        latest = list(events(criteria)[: max(0, lines)])
        for event in reversed(latest):
            self.stdout.write(describe(event))
        last_id = (
            latest[0].pk if latest else (AuthEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0)
        )
        while follow:
            time.sleep(1)
            for event in events(criteria).filter(id__gt=last_id).order_by("id"):
                self.stdout.write(describe(event))
                last_id = event.pk

    def handle_prune(self, **_: Any) -> None:
        removed = prune()
        self.stdout.write(
            ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in removed.items()) + " deleted."
        )
