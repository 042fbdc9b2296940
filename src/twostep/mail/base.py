"""What every mail transport shares: the message, the interface, the error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message to one recipient: a plain-text part and an HTML part."""

    to: str
    subject: str
    text: str
    html: str
    #: Extra headers, e.g. ``Auto-Submitted``.  Never tracking identifiers.
    headers: dict[str, str] = field(default_factory=dict)


class MailDeliveryError(Exception):
    """The message could not be handed to the mail server.

    ``str(error)`` is a sentence for an administrator ("The mail server at
    smtp.example.com:587 did not answer within 10 seconds."); ``smtp_error``
    is the underlying error text (an SMTP reply such as ``550 5.1.1 User
    unknown``, or the network error).  Neither ever holds the password or
    the message body.
    """

    def __init__(self, message: str, smtp_error: str = "") -> None:
        super().__init__(message)
        self.smtp_error = smtp_error or message


class MailUnconfirmed(MailDeliveryError):
    """The whole message reached the mail server, which did not confirm it in time.

    It may still be delivered: a code it carries is kept, as for an SMS the
    provider did not confirm.
    """


class Mailer(Protocol):
    """Delivers messages; the SMTP implementation is ``twostep.mail.smtp.SmtpMailer``."""

    def send(self, message: OutgoingMessage) -> None:
        """Hand ``message`` to the mail server.

        Raises:
            MailDeliveryError: the server is unreachable, too slow, refused
                the connection, the login or the message.
            MailUnconfirmed: the message was sent but not confirmed in time.
        """
