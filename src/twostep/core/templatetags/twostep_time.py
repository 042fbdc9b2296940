"""Times on the pages: written in UTC, shown in the reader's own time zone by ``twostep/localtime.js``."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import dateformat
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.filter
def local_time(value: datetime | None, format_string: str = "Y-m-d H:i") -> SafeString | str:
    """``value`` as a ``<time>`` element reading e.g. "2026-12-01 06:05 UTC" (``format_string`` in
    Django's ``date`` notation); the page's script rewrites it in the reader's time zone, keeping the
    UTC text as its tooltip.  Empty for None."""
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    kind = "datetime" if "Y" in format_string else "time"
    return format_html(
        '<time datetime="{}" data-local="{}">{} UTC</time>',
        utc.isoformat(),
        kind,
        dateformat.format(utc, format_string),
    )


@register.filter
def local_date(value: datetime | None) -> SafeString | str:
    """The day of ``value`` as a ``<time>`` element reading e.g. "2026-12-10", the day in UTC with the
    UTC time as its tooltip; the page's script rewrites it as the day in the reader's time zone (a
    deadline at 03:00 UTC falls on the day before in America).  Empty for None."""
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}" data-local="date" title="{} UTC">{}</time>',
        utc.isoformat(),
        dateformat.format(utc, "Y-m-d H:i"),
        dateformat.format(utc, "Y-m-d"),
    )
