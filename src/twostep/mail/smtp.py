"""SMTP delivery on Django's SMTP backend, with one deadline for the whole conversation.

Django's backend passes its timeout to each socket operation, so a server
that answers slowly, line by line, could hold a request far longer than the
timeout.  Here every command and every reply gets only what is left of one
deadline (``timeout`` seconds from the start), so a delivery never takes
longer than that, whatever the server does.  Errors become
``MailDeliveryError`` with a sentence an administrator can act on, and each
failed delivery is logged once, at WARNING (ERROR for an unexpected one),
naming the server and the kind of failure, never the recipient, the message
or the password, so that whoever watches the server log sees a mail outage.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.utils import make_msgid, parseaddr
from functools import cached_property
from pathlib import Path
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.utils import DNS_NAME

from twostep.core import lookup
from twostep.core.wording import seconds
from twostep.mail.base import MailDeliveryError, MailUnconfirmed, OutgoingMessage

logger = logging.getLogger(__name__)

SECURITY_CHOICES = ("starttls", "tls", "none")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def unencrypted_to_another_machine(host: str, security: str) -> bool:
    """Whether mail (and a password) would cross the network in the clear: no TLS, and not this machine."""
    return security == "none" and bool(host) and host.lower() not in _LOOPBACK


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to deliver.  ``password`` is plaintext in memory only."""

    host: str
    port: int
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    from_address: str = ""
    timeout: float = 10.0
    #: Absolute path of a PEM file of trusted certificate authorities, or "".
    ca_file: str = ""
    verify_certificate: bool = True

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class _DeadlineMixin:
    """Gives every socket operation only the time left until ``deadline``."""

    deadline: float = 0.0
    #: The end of the message data went out: from then on, a silence means
    #: the message may have been delivered.
    message_sent: bool = False
    sock: socket.socket | None
    #: smtplib's private name of the peer, used as the TLS server name.
    _host: str

    def _arm(self) -> None:
        remaining = self._left()
        if self.sock is not None:
            self.sock.settimeout(remaining)

    def send(self, s: Any) -> None:
        self._arm()
        super().send(s)  # type: ignore[misc]
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.message_sent = True

    def getreply(self) -> tuple[int, bytes]:
        self._arm()
        return super().getreply()  # type: ignore[misc,no-any-return]

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # The host name lookup, which no socket timeout bounds, counts against
        # the deadline too; then each address is tried with what is left.  TLS
        # still names the peer by its host name (``_host``).
        found = lookup.addresses(host, port, self._left())
        failure: OSError | None = None
        for *_, address in found:
            try:
                return super()._get_socket(address[0], port, self._left())  # type: ignore[misc,no-any-return]
            except OSError as exc:
                failure = exc
        raise failure or OSError(f"no address for {host}")

    def _left(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        return remaining


class _SMTP(_DeadlineMixin, smtplib.SMTP):
    pass


class _SMTPSSL(_DeadlineMixin, smtplib.SMTP_SSL):
    pass


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """The client TLS context for ``settings`` (TLS 1.2 or later).

    Raises:
        MailDeliveryError: the CA file cannot be read.
    """
    if not settings.verify_certificate:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif settings.ca_file:
        try:
            context = ssl.create_default_context(cafile=settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise MailDeliveryError(
                f"The certificate authority file {settings.ca_file} cannot be used: {exc}.", str(exc)
            ) from None
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _local_name(timeout: float) -> str:
    """The name this machine gives in EHLO: its fully qualified name, as Django gives it.

    Django looks that name up in DNS once per process; while the resolver
    does not answer, the host name stands in (a lookup must not outlast a
    delivery's deadline, ``core.lookup``).
    """
    try:
        return str(lookup.within(min(timeout, 2.0), "no fully qualified name", DNS_NAME.get_fqdn))
    except TimeoutError:
        return socket.gethostname()


class _Backend(EmailBackend):
    """Django's SMTP backend with the deadline, our TLS context and a quiet QUIT."""

    def __init__(self, settings: SmtpSettings, context: ssl.SSLContext | None) -> None:
        super().__init__(
            host=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.security == "starttls",
            use_ssl=settings.security == "tls",
            timeout=settings.timeout,
            fail_silently=False,
        )
        self._context = context
        #: The last connection opened, kept after it is closed.
        self.last_connection: _SMTP | _SMTPSSL | None = None

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        return self._context or ssl.create_default_context()

    def open(self) -> bool | None:
        if self.connection:
            return False
        timeout = float(self.timeout or 10.0)
        connection: _SMTP | _SMTPSSL
        deadline = time.monotonic() + timeout
        name = _local_name(timeout)
        if self.use_ssl:
            connection = _SMTPSSL(local_hostname=name, timeout=timeout, context=self.ssl_context)
        else:
            connection = _SMTP(local_hostname=name, timeout=timeout)
        connection.deadline = deadline
        self.last_connection = connection
        # smtplib names the TLS peer after the host given to __init__, which
        # would connect before the deadline is set; so it is set here.
        connection._host = self.host
        try:
            connection.connect(self.host, self.port)
            if self.use_tls:
                # Raises SMTPNotSupportedError when the server does not offer
                # STARTTLS: never fall back to sending in plain text.
                connection.starttls(context=self.ssl_context)
            if self.username and self.password:
                connection.login(self.username, self.password)
        except BaseException:
            connection.close()
            raise
        self.connection = connection
        return True

    def _close_connection(self, connection: Any) -> None:
        # The message was accepted before QUIT: a slow or rude goodbye changes nothing.
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()


class SmtpMailer:
    """Sends through one SMTP server; see ``SmtpSettings``."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, message: OutgoingMessage) -> None:
        """Deliver ``message`` within ``settings.timeout`` seconds; log a failure once.

        Raises:
            MailDeliveryError: not configured, unreachable, too slow, TLS or
                login failure, or the server refused the message.
        """
        try:
            self._deliver(message)
        except Exception as exc:
            kind, error = classify(exc, self.settings)
            server = self.settings.where if self.settings.host else "no server"
            if isinstance(error, MailUnconfirmed):
                logger.warning("Mail delivery through %s not confirmed: %s", server, kind)
            elif kind == UNEXPECTED:
                # A bug rather than an outage: with the traceback.
                logger.error("Mail delivery through %s failed unexpectedly", server, exc_info=exc)
            else:
                logger.warning("Mail delivery through %s failed: %s", server, kind)
            raise error from None

    def _deliver(self, message: OutgoingMessage) -> None:
        settings = self.settings
        if not settings.host:
            raise MailDeliveryError(
                "Outgoing mail is not configured: set the SMTP server under Admin, Outgoing mail (/admin/email) "
                "or in the [email] section of config.toml.",
                "no SMTP host configured",
            )
        if settings.password and unencrypted_to_another_machine(settings.host, settings.security):
            raise MailDeliveryError(
                f"Refusing to send the SMTP password to {settings.where} without encryption: choose STARTTLS or TLS.",
                "password over an unencrypted connection refused",
            )
        context = tls_context(settings) if settings.security != "none" else None
        backend = _Backend(settings, context)
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=settings.from_address,
            to=[message.to],
            headers={"Message-ID": make_msgid(domain=_domain_of(settings.from_address)), **message.headers},
            connection=backend,
        )
        email.attach_alternative(message.html, "text/html")
        try:
            email.send()
        except smtplib.SMTPResponseException:
            raise  # an answer, even to the message: it was refused
        except OSError as exc:
            sent = backend.last_connection is not None and backend.last_connection.message_sent
            if not sent:
                raise
            reason = _silence(exc, settings)
            raise MailUnconfirmed(
                f"The mail server at {settings.where} received the message but did not confirm it ({reason}). "
                "It may still arrive.",
                reason,
            ) from exc


def _silence(exc: OSError, settings: SmtpSettings) -> str:
    """How the server failed to confirm a message it received, in a few words."""
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return f"no answer within {seconds(settings.timeout)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the connection was closed"
    return exc.strerror or type(exc).__name__


def _domain_of(address: str) -> str:
    _, email = parseaddr(address)
    return email.rpartition("@")[2] or "localhost"


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


#: ``classify``'s kind for an error that is a bug rather than a mail problem.
UNEXPECTED = "unexpected error"


def _codes(exc: smtplib.SMTPResponseException) -> str:
    return f" ({exc.smtp_code})" if exc.smtp_code else ""


def classify(exc: BaseException, settings: SmtpSettings) -> tuple[str, MailDeliveryError]:
    """(the kind of failure, the MailDeliveryError in plain words) for an exception from a delivery.

    The kind is a short phrase for the server log ("connection refused",
    "recipient refused (550)"): it never holds an address, the message, a
    server's reply text or the password.
    """
    where = settings.where
    if isinstance(exc, MailDeliveryError):
        # Raised here before any connection: its short text is ours and says what was wrong.
        return exc.smtp_error, exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{address}: {_reply(*reply)}" for address, reply in exc.recipients.items())
        replies = ", ".join(sorted({str(code) for code, _ in exc.recipients.values()}))
        return (
            f"recipient refused ({replies})",
            MailDeliveryError(f"The mail server at {where} refused the recipient ({refused}).", refused),
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        return (
            f"login refused{_codes(exc)}",
            MailDeliveryError(f"The mail server at {where} refused the username or password ({reply}).", reply),
        )
    if isinstance(exc, smtplib.SMTPSenderRefused) and exc.smtp_code == 530:
        # 530 to MAIL FROM (RFC 4954, RFC 3207): not the address, but a login or
        # encryption the server wants before it takes any mail.
        reply = _reply(exc.smtp_code, exc.smtp_error)
        if "STARTTLS" in reply.upper():
            return f"encryption required{_codes(exc)}", MailDeliveryError(
                f"The mail server at {where} requires encryption before it takes mail ({reply}): "
                "set Security to STARTTLS (usually port 587) or TLS (usually port 465).",
                reply,
            )
        missing = (
            "a username is set but no password is stored: set the password"
            if settings.username and not settings.password
            else "set the username and password it expects"
        )
        return f"login required{_codes(exc)}", MailDeliveryError(
            f"The mail server at {where} requires a login before it takes mail ({reply}): {missing}.", reply
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        return f"sender address refused{_codes(exc)}", MailDeliveryError(
            f"The mail server at {where} refused the sender address {exc.sender} ({reply}). "
            "Check the From address: many servers only accept their own domain.",
            reply,
        )
    if isinstance(exc, smtplib.SMTPDataError):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        return (
            f"message refused{_codes(exc)}",
            MailDeliveryError(f"The mail server at {where} refused the message ({reply}).", reply),
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        return (
            f"error reply{_codes(exc)}",
            MailDeliveryError(f"The mail server at {where} answered with an error ({reply}).", reply),
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if "STARTTLS" in str(exc).upper():
            return "STARTTLS not offered", MailDeliveryError(
                f"The mail server at {where} does not offer STARTTLS, so nothing was sent. "
                "Use implicit TLS if it listens for it (usually port 465), or the right port.",
                str(exc),
            )
        return "login not supported", MailDeliveryError(
            f"The mail server at {where} does not accept a login here ({exc}).", str(exc)
        )
    if isinstance(exc, lookup.LookupTimeout):
        return "host name lookup timed out", MailDeliveryError(
            f"The mail server name {settings.host!r} could not be looked up within {seconds(settings.timeout)}: "
            "check the server's DNS resolver.",
            "host name lookup timed out",
        )
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return f"no answer within {seconds(settings.timeout)}", MailDeliveryError(
            f"The mail server at {where} did not answer within {seconds(settings.timeout)}.", "timed out"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return "TLS certificate not verified", MailDeliveryError(
            f"The TLS certificate of the mail server at {where} could not be verified ({reason}). "
            "Use the host name the certificate names, or trust its authority with [email] ca_file.",
            reason,
        )
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        return f"TLS failed ({reason})", MailDeliveryError(
            f"TLS with the mail server at {where} failed ({reason}). Check the security setting: "
            "port 465 usually needs TLS, port 587 STARTTLS.",
            str(reason),
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "connection closed by the server", MailDeliveryError(
            f"The mail server at {where} closed the connection unexpectedly.", str(exc)
        )
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", MailDeliveryError(
            f"Could not connect to the mail server at {where}: connection refused. "
            "Is the server running, and is the port right?",
            "connection refused",
        )
    if isinstance(exc, socket.gaierror):
        return "host name not resolved", MailDeliveryError(
            f"The mail server name {settings.host!r} could not be resolved ({exc.strerror}).", str(exc.strerror)
        )
    if isinstance(exc, smtplib.SMTPException):
        return f"SMTP error ({type(exc).__name__})", MailDeliveryError(
            f"The mail server at {where} failed: {exc}.", str(exc)
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"network error ({reason})", MailDeliveryError(
            f"Could not reach the mail server at {where}: {reason}.", reason
        )
    if isinstance(exc, (ValueError, UnicodeError)):
        # Django refuses header injection and malformed addresses before any connection.
        return "message could not be built", MailDeliveryError(f"The message could not be built: {exc}.", str(exc))
    # Anything else is a bug, but a sign-in must still end in a clear error, not a 500.
    return UNEXPECTED, MailDeliveryError(
        f"Sending through {where} failed unexpectedly ({type(exc).__name__}).", repr(exc)
    )


def resolve_ca_file(name: str, data_dir: Path) -> str:
    """``name`` as an absolute path (relative names are under the data directory); "" stays ""."""
    if not name:
        return ""
    path = Path(name)
    return str(path if path.is_absolute() else (data_dir / path).resolve())
