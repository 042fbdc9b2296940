"""Deleting what has outlived its use: old auth events, expired sign-ins, codes and sessions.

Run now and then beside requests (``audit.services``), it also looks at this
instance's clock against the database server's, as ``twostep serve`` does at
start: a clock that drifts while the service runs is told in the server log.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db.models import Q

from twostep.core import clock
from twostep.core.clockcheck import clock_warning

logger = logging.getLogger(__name__)

#: Spent or expired short-lived records are kept this long for the auth log's context.
SHORT_LIVED_GRACE = timedelta(days=1)
#: A password-step counter with no failure for this long is forgotten.
QUIET_THROTTLE = timedelta(days=30)


def prune() -> dict[str, int]:
    """Delete expired records; return how many of each kind went."""
    from twostep.mfa.trusted.services import prune_expired as prune_expired_trust

    now = clock.now()
    retention = timedelta(days=settings.CONFIG.audit.retention_days)
    removed = {
        "auth_events": _delete("audit.AuthEvent", created_at__lt=now - retention),
        "pending_logins": _delete("mfa.PendingLogin", expires_at__lt=now - SHORT_LIVED_GRACE),
        "one_time_codes": _delete("mfa.OneTimeCode", expires_at__lt=now - SHORT_LIVED_GRACE),
        "email_checks": _delete("mfa.EmailCheck", created_at__lt=now - SHORT_LIVED_GRACE),
        "sign_in_throttles": _delete_quiet_throttles(now - QUIET_THROTTLE),
        "sessions": _delete("usersessions.UserSession", expire_date__lt=now),
        "trusted_browsers": prune_expired_trust(),
    }
    from twostep.notifications.services import retry_pending

    retry_pending()
    warning = clock_warning()
    if warning:
        logger.warning(warning)
    return removed


def _delete_quiet_throttles(before: datetime) -> int:
    """Counters of names and addresses quiet since ``before``: every name ever typed left one.

    A counter past its free tries is blocked after each failure, so
    ``blocked_until`` tells its last failure; one still within them (no
    block) costs nothing to forget, since it only gives those few tries back.
    """
    model = apps.get_model("accounts.SignInThrottle")
    quiet = Q(blocked_until__isnull=True, window_started_at__lt=before) | Q(blocked_until__lt=before)
    deleted, _ = model.objects.filter(quiet).delete()
    return int(deleted)


def _delete(model_label: str, **filters: object) -> int:
    model = apps.get_model(model_label)
    deleted, _ = model.objects.filter(**filters).delete()
    return int(deleted)
