"""What every console page's navigation shows beside the pages' own context."""

from __future__ import annotations

from django.http import HttpRequest

from twostep.mfa.policy import recent_break_glass


def console(request: HttpRequest) -> dict[str, object]:
    # A callable: the template calls it in the console's navigation only, so
    # no other page pays for its two queries.
    return {"recent_break_glass": recent_break_glass}
