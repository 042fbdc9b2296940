"""Security notifications by email.

Every auth-log event of a kind listed in ``NOTICES`` becomes a notification
to all the user's addresses, whatever code path made the change: the hook
sits in ``twostep.audit.services.record``, not in the features.  The
notification is written in the same transaction as the event (an outbox) and
sent after the commit (in the server, beside the request: ``core.background``); a failed send stays in the outbox and is retried by
housekeeping and whenever another notification goes out (mail works again),
for a day; one given up on is recorded in the auth log
(``notification.abandoned``), so a change is never silently left unnotified.
A worker claims a notice before sending it (``claimed_until``), so that the
retries of the other processes and instances do not send it a second time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F, Q

from twostep.core import background, clock
from twostep.notifications.models import Notification

logger = logging.getLogger(__name__)

#: Event kind → the sentence the message opens with.
NOTICES = {
    "totp.enabled": "An authenticator app was added as a sign-in method.",
    "totp.disabled": "The authenticator app was removed from your sign-in methods.",
    "email.enabled": "Email codes were added as a sign-in method.",
    "email.disabled": "Email codes were removed from your sign-in methods.",
    "sms.enabled": "SMS codes were added as a sign-in method.",
    "sms.disabled": "SMS codes were removed from your sign-in methods.",
    "recovery_codes.generated": "New recovery codes were created; the old ones no longer work.",
    "recovery_codes.used": "One of your recovery codes was used, to sign in or to confirm a security change.",
    "two_factor.reset": "An administrator removed all your second-step methods.",
    "second_step.locked": "Your second sign-in step is locked after too many wrong codes.",
    "password.changed": "Your password was changed.",
    "password.reset_by_admin": "An administrator set a new password for your account.",
    "email.added": "An email address was added to your account.",
    "email.removed": "An email address was removed from your account.",
    "phone.added": "A phone number was added to your account.",
    "phone.removed": "A phone number was removed from your account.",
    # Both let someone who has them skip the second step for weeks: the owner must hear of it.
    "api_token.created": "A personal API token was created for your account.",
    "trusted_browser.added": "A browser was trusted to skip the second sign-in step.",
}
#: Event kind → what to do, where "If this was you, there is nothing to do" would mislead.
ADVICE = {
    "second_step.locked": (
        "Until it is unlocked nobody can sign in to your account: sign in with one of your recovery "
        "codes, or ask your administrator to unlock it. Whoever typed the wrong codes knew your "
        "password; if it was not you, change your password as soon as you are signed in."
    ),
}
MAX_ATTEMPTS = 5
RETRY_FOR = timedelta(days=1)
#: How long a worker may take to send one notice (every address, each within
#: the mail server's timeout) before another may take it over.
CLAIM_FOR = timedelta(minutes=10)


def notify_for_event(event: Any) -> None:
    """Queue a notification for an auth event when its kind calls for one."""
    if event.kind not in NOTICES or event.user_id is None:
        return
    from twostep.usersessions.services import describe_agent

    notification = Notification.objects.create(
        user_id=event.user_id,
        kind=event.kind,
        created_at=clock.now(),
        context={
            "what": NOTICES[event.kind],
            "advice": ADVICE.get(event.kind, ""),
            "when": event.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "ip": event.ip or "",
            # Only a browser's name: the User-Agent is whatever the requester
            # sent, and this email speaks with the service's voice.
            "browser": describe_agent(event.user_agent, known_only=True) if event.user_agent else "",
            "by_admin": bool(event.actor_id and event.actor_id != event.user_id),
            # The address taken away hears of it too (it may be the owner's
            # only one they still read).
            "also_to": [event.detail["email"]] if event.kind == "email.removed" and event.detail else [],
        },
    )
    # Sent beside the request in the server (core.background): the user who
    # made the change does not wait on the mail server.
    transaction.on_commit(lambda: background.run(partial(deliver, notification.pk)))


def _claim(notification_id: int) -> bool:
    """Take the notification for this worker; False when it went out already or another worker is sending it.

    Every server process (and every instance) sends beside its requests and
    retries what waits: without the claim, a notice being sent by one was
    picked up by another's retry and the user got it twice.
    """
    now = clock.now()
    unclaimed = Q(claimed_until=None) | Q(claimed_until__lte=now)
    return bool(
        Notification.objects.filter(unclaimed, pk=notification_id, sent_at=None).update(claimed_until=now + CLAIM_FOR)
    )


def deliver(notification_id: int, *, then_retry: bool = True) -> bool:
    """Send one queued notification to every address of its user; True when it went out (or had nowhere to go).

    False when it failed (kept on the row for the next retry), went out
    already, or another worker is sending it.  Never raises.  When it went
    out and ``then_retry``, the notifications still waiting are tried too:
    mail works (again).
    """
    from twostep.core.runtime import get_settings
    from twostep.mail import config
    from twostep.mail.base import MailDeliveryError, MailUnconfirmed
    from twostep.mail.service import send_mail

    if not _claim(notification_id):
        return False
    notification = Notification.objects.select_related("user").filter(pk=notification_id).first()
    if notification is None:  # its user was deleted meanwhile
        return False
    addresses = list(notification.user.email_addresses.values_list("email", flat=True))
    known = {address.lower() for address in addresses}
    addresses += [a for a in notification.context.get("also_to", []) if a.lower() not in known]
    if not addresses or not get_settings(config.HOST)[config.HOST]:
        # Nobody to tell, or no mail server at all: nothing to retry.  Any
        # other trouble (an unreadable password, a server down) is a failure
        # below, kept for the next try.
        Notification.objects.filter(pk=notification.pk).update(
            sent_at=clock.now(), last_error="not sent: no address or no mail server"
        )
        return True
    context = {**notification.context, "name": notification.user.name}
    errors = []
    for address in addresses:
        try:
            send_mail(address, "security_notice", context)
        except MailUnconfirmed:
            continue  # the server has it: trying again would send it twice (already logged)
        except MailDeliveryError as exc:
            errors.append(str(exc))
    if errors:
        Notification.objects.filter(pk=notification.pk).update(
            attempts=F("attempts") + 1, last_error=errors[0][:500], claimed_until=None
        )
        logger.warning("security notification %s not delivered: %s", notification.pk, errors[0])
        return False
    Notification.objects.filter(pk=notification.pk).update(
        sent_at=clock.now(), attempts=F("attempts") + 1, last_error="", claimed_until=None
    )
    if then_retry:
        retry_pending()
    return True


def retry_pending() -> int:
    """Try again the notifications that failed recently; return how many went out.

    Those past ``MAX_ATTEMPTS`` tries or ``RETRY_FOR`` are given up on, each
    with a ``notification.abandoned`` entry in the auth log (the Outgoing
    mail page lists it among delivery failures).
    """
    from twostep.audit.services import SYSTEM, Outcome, record

    since = clock.now() - RETRY_FOR
    waiting = Notification.objects.filter(sent_at=None)
    for stale in waiting.exclude(attempts__lt=MAX_ATTEMPTS, created_at__gte=since).select_related("user"):
        # Marked done first: of two instances retrying at once, one records it.
        if Notification.objects.filter(pk=stale.pk, sent_at=None).update(sent_at=clock.now()):
            record(
                "notification.abandoned",
                Outcome.FAILURE,
                origin=SYSTEM,
                user=stale.user,
                reason="delivery_failed",
                detail={"notice": stale.kind, "attempts": stale.attempts, "error": stale.last_error[:200]},
            )
            logger.error(
                "security notification %s abandoned after %s tries: %s", stale.pk, stale.attempts, stale.last_error
            )
    pending = waiting.filter(attempts__lt=MAX_ATTEMPTS, created_at__gte=since)
    return sum(deliver(pk, then_retry=False) for pk in pending.values_list("pk", flat=True))
