"""Deleting what has outlived its use: old auth events, expired sign-ins, codes and sessions."""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps
from django.conf import settings

from twostep.core import clock

#: Spent or expired short-lived records are kept this long for the auth log's context.
SHORT_LIVED_GRACE = timedelta(days=1)


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
        "sessions": _delete("usersessions.UserSession", expire_date__lt=now),
        "trusted_browsers": prune_expired_trust(),
    }
    from twostep.notifications.services import retry_pending

    retry_pending()
    return removed


def _delete(model_label: str, **filters: object) -> int:
    model = apps.get_model(model_label)
    deleted, _ = model.objects.filter(**filters).delete()
    return int(deleted)
