"""Helpers shared by the issue-8 tests (recovery codes, trusted browsers, choice, enforcement)."""

from __future__ import annotations

import re
import time
from typing import Any

from django.test import Client

from tests.conftest import PASSWORD, sign_in
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.decorators import REAUTH_KEY
from twostep.factors import totp
from twostep.mfa.models import Authenticator
from twostep.mfa.totp import flows

__all__ = ["PASSWORD", "enrol_totp", "events", "fresh_codes", "next_code", "sign_in", "signed_in_with_totp"]

_last_step: dict[bytes, int] = {}


def enrol_totp(user: User) -> bytes:
    """An authenticator app for ``user``, confirmed with the previous step's code, so that the
    current and the next step stay free for two sign-ins without waiting."""
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    for _ in range(2):
        step = totp.time_step(clock.timestamp()) - 1
        try:
            flows.confirm(user, totp.hotp(key, step), CLI)
        except flows.EnrolmentError:
            continue  # the step changed between reading the clock and confirming: once more
        _last_step[key] = step
        return key
    raise AssertionError("could not confirm the authenticator app")


def next_code(key: bytes) -> str:
    """A code for the next unused step within the accepted window (the replay guard allows each step once)."""
    now = totp.time_step(clock.timestamp())
    step = max(_last_step.get(key, 0) + 1, now - 1)
    if step > now + 1:
        # Every step in the accepted window is spent: wait for the window to move on.
        time.sleep(max(0.0, (step - 1) * totp.DEFAULT_PERIOD - clock.timestamp() + 0.05))
    _last_step[key] = step
    return totp.hotp(key, step)


def signed_in_with_totp(client: Client, user: User, key: bytes, **extra: Any) -> Any:
    """Both steps through the pages; returns the verify response."""
    response = sign_in(client, user.username)
    assert response.status_code == 302 and response["Location"] == "/login/verify", response
    return client.post("/login/verify", {"code": next_code(key), **extra})


def fresh_codes(client: Client) -> list[str]:
    """Open the Security page right after enrolling: the first set of codes, shown once."""
    session = client.session
    session[REAUTH_KEY] = clock.timestamp()
    session.save()
    html = client.get("/account/security").content.decode()
    return re.findall(r"<li><code>([0-9A-Z-]{19})</code></li>", html)


def events(kind: str, **filters: Any) -> list[AuthEvent]:
    return list(AuthEvent.objects.filter(kind=kind, **filters).order_by("pk"))


def factor_count(user: User) -> int:
    return Authenticator.objects.filter(user=user, confirmed_at__isnull=False).count()
