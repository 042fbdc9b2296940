"""Outgoing mail: templated messages over SMTP.

Use ``send_mail(to, "template_name", context)``; it raises
``MailDeliveryError`` (with the SMTP error for the admin) when the message
could not be delivered.  Templates live in ``twostep/mail/templates/mail/``
and can be overridden from ``<data_dir>/templates/mail/`` (docs/email.md).
"""

from __future__ import annotations

from twostep.mail.base import MailDeliveryError, Mailer, MailUnconfirmed, OutgoingMessage
from twostep.mail.service import send_mail, send_test_email, use_mailer

__all__ = [
    "MailDeliveryError",
    "MailUnconfirmed",
    "Mailer",
    "OutgoingMessage",
    "send_mail",
    "send_test_email",
    "use_mailer",
]
