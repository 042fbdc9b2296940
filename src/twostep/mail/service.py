"""Sending templated mail: ``send_mail(to, "template_name", context)``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.template import TemplateDoesNotExist, TemplateSyntaxError

from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.mail import config, rendering
from twostep.mail.base import MailDeliveryError, Mailer, OutgoingMessage
from twostep.mail.smtp import SmtpMailer

#: Marks every message as machine-sent (RFC 3834) so that auto-replies and
#: out-of-office answers do not bounce back.
HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}

_mailer_override: Mailer | None = None


def get_mailer() -> Mailer:
    """The mailer for the current settings (read at every call: the console may change them).

    Raises:
        MailDeliveryError: the stored SMTP password cannot be decrypted.
    """
    if _mailer_override is not None:
        return _mailer_override
    return SmtpMailer(config.current())


@contextmanager
def use_mailer(mailer: Mailer) -> Iterator[None]:
    """Send through ``mailer`` inside the block (for tests of code that sends mail)."""
    global _mailer_override
    previous = _mailer_override
    _mailer_override = mailer
    try:
        yield
    finally:
        _mailer_override = previous


def base_context() -> dict[str, Any]:
    """What every template may use: ``site_name`` and ``public_url``."""
    return {"site_name": settings.CONFIG.two_factor.issuer, "public_url": settings.CONFIG.server.public_url}


def send_mail(
    to: str,
    template_name: str,
    context: Mapping[str, Any],
    *,
    private: Iterable[str] = rendering.PRIVATE_KEYS,
) -> None:
    """Render message ``template_name`` (see ``twostep.mail.rendering``) and deliver it to ``to``.

    Keys in ``private`` (by default ``code``) are never rendered into the subject.

    Raises:
        MailDeliveryError: the message could not be built from its templates,
            or could not be delivered (the error says why, in plain words).
    """
    try:
        rendered = rendering.render(template_name, {**base_context(), **context}, private=private)
    except (TemplateDoesNotExist, TemplateSyntaxError) as exc:
        raise MailDeliveryError(f"The mail template {template_name!r} cannot be used: {exc}.", str(exc)) from None
    message = OutgoingMessage(
        to=to, subject=rendered.subject, text=rendered.text, html=rendered.html, headers=dict(HEADERS)
    )
    get_mailer().send(message)


def send_test_email(to: str, *, origin: Origin, actor: Any = None) -> None:
    """Send the test message to ``to`` with the current settings, and log the outcome.

    Raises:
        ValidationError: ``to`` is not an email address.
        MailDeliveryError: the message was not delivered; ``str(error)`` says why.
    """
    address = to.strip()
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError(f"{to!r} is not an email address.", code="invalid_email") from None
    requested_by = getattr(actor, "username", "") or ("the command line" if origin.user_agent == "twostep-cli" else "")
    context = {"sent_at": clock.now().strftime("%Y-%m-%d %H:%M:%S"), "requested_by": requested_by}
    try:
        send_mail(address, "test", context)
    except MailDeliveryError as exc:
        record(
            "email.test",
            Outcome.FAILURE,
            origin=origin,
            actor=actor,
            reason="delivery_failed",
            detail={"to": address, "error": exc.smtp_error, "message": str(exc)},
        )
        raise
    record("email.test", Outcome.SUCCESS, origin=origin, actor=actor, detail={"to": address})
