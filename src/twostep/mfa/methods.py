"""The second-step methods, looked up by name.

Each method (TOTP, email, SMS) provides a handler with the same small shape;
the sign-in flow in ``mfa.login`` never branches on the method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from twostep.audit.services import Origin
from twostep.mfa.models import Authenticator, PendingLogin


class MethodHandler(Protocol):
    #: The Method value this handler serves ("totp", "email", "sms").
    method: str
    #: Optional template included under the code field of /login/verify
    #: (e.g. a "Send a new code" form); rendered with ``pending`` and
    #: ``authenticator`` in its context.  None for nothing.
    verify_template: str | None

    def prompt(self, authenticator: Authenticator) -> str:
        """The instruction shown on the second-step page."""

    def begin(self, pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
        """Called when this method is chosen for a pending sign-in (email/SMS send a code).

        Raises:
            twostep.mfa.login.SecondStepError: the method cannot be used now.
        """

    def verify(self, pending: PendingLogin, authenticator: Authenticator, code: str, now: datetime) -> str | None:
        """Check and consume ``code`` atomically; return None on success or a failure reason.

        Runs inside the caller's transaction.  ``code`` is already known to be
        well formed.
        """

    def code_delivery(self, pending: PendingLogin, authenticator: Authenticator) -> CodeDelivery | None:
        """Whether a code is out for ``pending`` and, if not, what to tell the user; None: nothing is sent."""


@dataclass(frozen=True)
class CodeDelivery:
    """The state of a sent code (email, SMS) for one pending sign-in."""

    sent: bool
    #: Why no code is out (or why none can be sent now), for the user; "" when all is well.
    problem: str


#: A handler's failure reason for the right code refused only because the
#: server clock went back since the factor's last use: logged, not counted
#: as a wrong guess (the user did nothing wrong).
CLOCK_BEHIND = "clock_behind_last_use"

#: A handler's failure reason when the factor's stored secret cannot be
#: decrypted with this instance's keys (another instance encrypted it with
#: keys this one lacks): a fault of the service, not of the user, so not
#: counted as a wrong guess; the user is asked to try again later.
SECRET_UNREADABLE = "secret_unreadable"  # noqa: S105 - a reason code, not a secret

_HANDLERS: dict[str, Any] = {}


@dataclass(frozen=True)
class SecurityPanel:
    """One method's section of the Security page.

    ``template`` is included with the context returned by ``context(request,
    user)`` merged into the page's context; panels appear in ``order``.
    """

    method: str
    template: str
    context: Callable[[Any, Any], dict[str, Any]]
    order: int = 100


_PANELS: dict[str, SecurityPanel] = {}


def register_panel(panel: SecurityPanel) -> None:
    _PANELS[panel.method] = panel


def panels() -> list[SecurityPanel]:
    return sorted(_PANELS.values(), key=lambda panel: panel.order)


def register(handler: MethodHandler) -> MethodHandler:
    _HANDLERS[handler.method] = handler
    return handler


def handler_for(method: str) -> MethodHandler:
    """Raises KeyError for a method no installed handler serves."""
    return _HANDLERS[method]  # type: ignore[no-any-return]


# Optional handler hooks: a handler may define these; without them the
# defaults below apply.


def is_usable(authenticator: Authenticator) -> bool:
    """Whether an enrolled factor can still be used to sign in.

    A handler's ``is_usable(authenticator)`` says no when, e.g., the phone
    number or address the factor sends codes to was removed from the account.
    """
    check = getattr(handler_for(authenticator.method), "is_usable", None)
    return True if check is None else bool(check(authenticator))


class NoCodeToResend(Exception):
    """The pending sign-in's method sends no code (e.g. an authenticator app)."""


def resend(pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
    """Send a new code for ``pending`` through the handler's ``resend(pending, authenticator, origin)``.

    Raises:
        NoCodeToResend: the method has no such hook (nothing is sent).
        Whatever the handler's ``resend`` raises when no code went out (see
        the method's flows module: cooldown, send caps, delivery failures,
        ``codes.Ended`` when the sign-in ended meanwhile).
    """
    send = getattr(handler_for(pending.method), "resend", None)
    if send is None:
        raise NoCodeToResend(pending.method)
    send(pending, authenticator, origin)


def verify_context(pending: PendingLogin, authenticator: Authenticator) -> dict[str, Any]:
    """Extra context for the handler's ``verify_template`` (e.g. a resend cooldown).

    From the handler's ``verify_context(pending, authenticator)``; {} without one.
    Methods that send codes include ``code_delivery`` (a ``CodeDelivery``).
    """
    extra = getattr(handler_for(pending.method), "verify_context", None)
    return {} if extra is None else dict(extra(pending, authenticator))
