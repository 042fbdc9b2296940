"""The API's answers when the email or SMS services send no code.

The services decide (cooldown, send caps, delivery); this only translates
their refusals into the error shape: a limit that lifts by itself is 429
``rate_limited`` with ``Retry-After``; anything else that kept the code from
going out is 503 ``delivery_failed``.  Nothing is consumed in either case.
"""

from __future__ import annotations

import math
from datetime import timedelta

from twostep.api.errors import ApiError
from twostep.mail import MailDeliveryError
from twostep.mfa import codes
from twostep.mfa.email import flows as email_flows
from twostep.sms.service import NotSent

#: The exceptions the email and SMS services raise when no code was sent.
NOT_SENT: tuple[type[Exception], ...] = (codes.SendRefused, MailDeliveryError, NotSent)


def ended(what: str) -> ApiError:
    """409 ``conflict``: ``what`` (a set-up, a check) ended while its code was being sent; nothing was sent.

    Another request removed it in the meantime: a 2FA reset, turning the
    method off, or the same set-up started again on another address.
    """
    return ApiError("conflict", f"The {what} ended while its code was being sent: nothing was sent. Start again.")


def rate_limited(message: str, retry_after: timedelta) -> ApiError:
    """429 ``rate_limited`` with ``Retry-After`` in whole seconds (at least one)."""
    wait = max(1, math.ceil(retry_after.total_seconds()))
    return ApiError("rate_limited", message, headers={"Retry-After": str(wait)})


def not_sent(exc: Exception) -> ApiError:
    """The ApiError for one of ``NOT_SENT``: 429 for a cooldown or cap, 503 otherwise."""
    if isinstance(exc, codes.SendRefused):
        return rate_limited(email_flows.refusal_message(exc), exc.retry_after)
    if isinstance(exc, NotSent) and exc.retry_after is not None:
        return rate_limited(exc.user_message, exc.retry_after)
    if isinstance(exc, NotSent):
        return ApiError("delivery_failed", exc.user_message)
    return ApiError("delivery_failed", email_flows.COULD_NOT_SEND)
