"""The SMTP adapter against a real SMTP server on 127.0.0.1: TLS, login, and every way it fails."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests import resolver
from tests.mail.smtp_server import SMTP_PASSWORD, SMTP_USER, Certificates, SmtpServer, configure_twostep
from twostep.mail import MailDeliveryError, MailUnconfirmed, send_mail
from twostep.mail.base import OutgoingMessage
from twostep.mail.smtp import SmtpMailer, SmtpSettings

pytestmark = pytest.mark.django_db

CONTEXT = {"sent_at": "2030-01-01 00:00:00", "requested_by": "root"}


def test_starttls_delivers_text_and_html(mail_server: SmtpServer) -> None:
    """A message goes through STARTTLS, verified against the CA, with a text and an HTML part."""
    send_mail("alice@example.com", "test", CONTEXT)
    [received] = mail_server.wait_for(1)
    assert received.over_tls
    assert received.rcpt_tos == ["alice@example.com"]
    assert received.mail_from == "twostep@example.test"
    assert received.subject == "twostep test email"
    assert "sent at 2030-01-01 00:00:00 UTC at the request of root" in received.text
    assert "<p>This is a test message from twostep" in received.html
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert str(received.message["Message-ID"]).endswith("@example.test>")


def test_untrusted_certificate_is_refused(
    smtp_server: SmtpServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the test CA the server's certificate is not trusted: nothing is sent, the error says why."""
    configure_twostep(monkeypatch, certificates, smtp_server.port, trust_test_ca=False)
    with pytest.raises(MailDeliveryError, match=r"certificate .* could not be verified"):
        send_mail("alice@example.com", "test", CONTEXT)
    assert smtp_server.messages() == []


def test_certificate_checks_can_be_switched_off(
    smtp_server: SmtpServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify_certificate = false accepts the unknown certificate (for test relays) and still encrypts."""
    configure_twostep(monkeypatch, certificates, smtp_server.port, trust_test_ca=False, verify_certificate=False)
    send_mail("alice@example.com", "test", CONTEXT)
    assert smtp_server.wait_for(1)[0].over_tls


def test_no_plain_text_fallback_without_starttls(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that does not offer STARTTLS gets nothing when STARTTLS is configured."""
    server = SmtpServer(certificates, mode="plain").start()
    try:
        configure_twostep(monkeypatch, certificates, server.port, security="starttls")
        with pytest.raises(MailDeliveryError, match="does not offer STARTTLS"):
            send_mail("alice@example.com", "test", CONTEXT)
        assert server.messages() == []
    finally:
        server.stop()


def test_implicit_tls(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """security = tls speaks TLS from the first byte (port 465 style)."""
    server = SmtpServer(certificates, mode="tls").start()
    try:
        configure_twostep(monkeypatch, certificates, server.port, security="tls")
        send_mail("alice@example.com", "test", CONTEXT)
        assert server.wait_for(1)[0].over_tls
    finally:
        server.stop()


def test_plain_connection_to_a_local_relay(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """security = none delivers in plain text to a relay on this machine."""
    server = SmtpServer(certificates, mode="plain").start()
    try:
        configure_twostep(monkeypatch, certificates, server.port, security="none")
        send_mail("alice@example.com", "test", CONTEXT)
        assert not server.wait_for(1)[0].over_tls
    finally:
        server.stop()


def test_login_after_starttls(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """Username and the stored (encrypted) password log in after STARTTLS."""
    server = SmtpServer(certificates, mode="starttls", auth=True).start()
    try:
        configure_twostep(monkeypatch, certificates, server.port, username=SMTP_USER, password=SMTP_PASSWORD)
        send_mail("alice@example.com", "test", CONTEXT)
        [received] = server.wait_for(1)
        assert received.login == SMTP_USER and received.over_tls
    finally:
        server.stop()


def test_wrong_password_is_reported_in_plain_words(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused login names the problem and carries the server's 535 reply."""
    server = SmtpServer(certificates, mode="starttls", auth=True).start()
    try:
        configure_twostep(monkeypatch, certificates, server.port, username=SMTP_USER, password="wrong")
        with pytest.raises(MailDeliveryError, match="refused the username or password") as caught:
            send_mail("alice@example.com", "test", CONTEXT)
        assert caught.value.smtp_error.startswith("535")
        assert "wrong" not in str(caught.value) and "wrong" not in caught.value.smtp_error
        assert server.messages() == []
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("security", "username", "said"),
    [
        ("starttls", "", "requires a login before it takes mail (530"),
        ("starttls", SMTP_USER, "a username is set but no password is stored: set the password"),
        ("none", "", "requires encryption before it takes mail (530"),
    ],
)
def test_a_server_that_wants_a_login_or_encryption_first_says_so(
    certificates: Certificates, monkeypatch: pytest.MonkeyPatch, security: str, username: str, said: str
) -> None:
    """A 530 to the sender (login or STARTTLS required) is not blamed on the From address: the error says what
    the server wants first."""
    server = SmtpServer(certificates, mode="starttls", auth=True).start()
    try:
        configure_twostep(monkeypatch, certificates, server.port, security=security, username=username)
        with pytest.raises(MailDeliveryError) as caught:
            send_mail("alice@example.com", "test", CONTEXT)
        assert said in str(caught.value) and "From address" not in str(caught.value)
        assert server.messages() == []
    finally:
        server.stop()


def test_password_never_sent_unencrypted_to_a_remote_server() -> None:
    """With security = none the password is only ever sent to this machine."""
    mailer = SmtpMailer(SmtpSettings(host="smtp.example.com", port=25, security="none", username="u", password="p"))
    message = OutgoingMessage(to="a@example.com", subject="s", text="t", html="<p>t</p>")
    with pytest.raises(MailDeliveryError, match="without encryption"):
        mailer.send(message)


def test_server_down(
    mail_server: SmtpServer, closed_port: int, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody listening: connection refused, said plainly and quickly."""
    configure_twostep(monkeypatch, certificates, closed_port)
    started = time.monotonic()
    with pytest.raises(MailDeliveryError, match="connection refused") as caught:
        send_mail("alice@example.com", "test", CONTEXT)
    assert time.monotonic() - started < 2
    assert f"127.0.0.1:{closed_port}" in str(caught.value)


def test_recipient_refused_with_5xx(mail_server: SmtpServer) -> None:
    """A 550 for the recipient becomes an error carrying the server's words."""
    mail_server.rcpt_reply = "550 5.1.1 <alice@example.com>: Recipient address rejected"
    with pytest.raises(MailDeliveryError, match="refused the recipient") as caught:
        send_mail("alice@example.com", "test", CONTEXT)
    assert "550 5.1.1 <alice@example.com>: Recipient address rejected" in caught.value.smtp_error


def test_message_refused_with_5xx(mail_server: SmtpServer) -> None:
    """A 554 after DATA becomes 'refused the message' with the reply."""
    mail_server.data_reply = "554 5.7.1 Message rejected as spam"
    with pytest.raises(MailDeliveryError, match=r"refused the message \(554 5.7.1 Message rejected as spam\)"):
        send_mail("alice@example.com", "test", CONTEXT)


def test_server_that_never_answers_times_out(
    hanging_port: int, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts the connection and stays silent fails after the configured timeout."""
    configure_twostep(monkeypatch, certificates, hanging_port, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(MailDeliveryError, match="did not answer within 1 second") as caught:
        send_mail("alice@example.com", "test", CONTEXT)
    assert 0.9 < time.monotonic() - started < 2.5
    assert caught.type is MailDeliveryError  # nothing was sent: not "may still arrive"


def test_message_received_but_not_confirmed(
    mail_server: SmtpServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server has the whole message but does not confirm it in time: the error says it may still arrive."""
    configure_twostep(monkeypatch, certificates, mail_server.port, timeout=1.0)
    mail_server.data_delay = 2.0
    with pytest.raises(MailUnconfirmed, match=r"received the message but did not confirm it \(no answer within 1 "):
        send_mail("alice@example.com", "test", CONTEXT)
    assert [m.rcpt_tos for m in mail_server.messages()] == [["alice@example.com"]]


def test_message_refused_after_a_slow_answer_is_refused(mail_server: SmtpServer) -> None:
    """An error reply to the message, however late within the timeout, is a refusal, not "may still arrive"."""
    mail_server.data_reply = "554 5.7.1 Message rejected as spam"
    mail_server.data_delay = 0.3
    with pytest.raises(MailDeliveryError, match="refused the message") as caught:
        send_mail("alice@example.com", "test", CONTEXT)
    assert caught.type is MailDeliveryError


@pytest.fixture
def dribbling_port() -> Iterator[int]:
    """An SMTP server that answers every line, but each after 0.4 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            reader = connection.makefile("rb")
            time.sleep(0.4)
            connection.sendall(b"220 slow.example ESMTP\r\n")
            in_data = False
            for line in reader:
                if stop.is_set():
                    return
                if in_data and line.rstrip(b"\r\n") != b".":
                    continue
                time.sleep(0.4)
                command = line[:4].upper()
                if in_data:
                    in_data = False
                    connection.sendall(b"250 queued\r\n")
                elif command == b"DATA":
                    in_data = True
                    connection.sendall(b"354 go on\r\n")
                elif command == b"QUIT":
                    connection.sendall(b"221 bye\r\n")
                    return
                else:
                    connection.sendall(b"250 ok\r\n")

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.close()


def test_timeout_bounds_the_whole_conversation(
    dribbling_port: int, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each reply comes within the timeout, yet the delivery as a whole stops at the timeout."""
    configure_twostep(monkeypatch, certificates, dribbling_port, security="none", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(MailDeliveryError, match="did not answer within 1 second"):
        send_mail("alice@example.com", "test", CONTEXT)
    assert time.monotonic() - started < 1.5


def test_not_configured_is_a_clear_error(db: None) -> None:
    """With no SMTP host, sending fails with an instruction, not a crash."""
    with pytest.raises(MailDeliveryError, match="Outgoing mail is not configured"):
        send_mail("alice@example.com", "test", CONTEXT)


def smtp_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "twostep.mail.smtp"]


def test_failed_delivery_is_logged_once(
    mail_server: SmtpServer,
    closed_port: int,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A mail outage reaches the server log: one WARNING naming the server and what went wrong."""
    configure_twostep(monkeypatch, certificates, closed_port)
    with pytest.raises(MailDeliveryError):
        send_mail("alice@example.com", "test", CONTEXT)
    [record] = smtp_log(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"Mail delivery through 127.0.0.1:{closed_port} failed: connection refused"
    assert "alice@example.com" not in caplog.text


SECRET_CODE = "424242"
LOGGED_PASSWORD = "relay-password-never-logged"


@pytest.mark.parametrize(
    ("refusal", "kind"),
    [
        ({"data_reply": f"554 5.7.1 Message with {SECRET_CODE} rejected"}, "message refused (554)"),
        ({"rcpt_reply": "550 5.1.1 <alice@example.com>: Recipient address rejected"}, "recipient refused (550)"),
        ({"password": LOGGED_PASSWORD}, "login refused (535)"),
    ],
    ids=["message", "recipient", "login"],
)
def test_logged_failure_holds_no_code_password_or_address(
    certificates: Certificates, caplog: pytest.LogCaptureFixture, refusal: dict[str, str], kind: str
) -> None:
    """The log line says the kind of failure (with the reply code), never the message, the password or the recipient.

    The server here echoes the code and the address in its replies: they reach
    the administrator's error and the auth log, not the server log.
    """
    server = SmtpServer(certificates, mode="starttls", auth=True).start()
    try:
        server.rcpt_reply = refusal.get("rcpt_reply", "")
        server.data_reply = refusal.get("data_reply", "")
        mailer = SmtpMailer(
            SmtpSettings(
                host="127.0.0.1",
                port=server.port,
                username=SMTP_USER,
                password=refusal.get("password", SMTP_PASSWORD),
                from_address="twostep@example.test",
                timeout=3.0,
                ca_file=str(certificates.ca_file),
            )
        )
        message = OutgoingMessage(
            to="alice@example.com",
            subject="Your sign-in code",
            text=f"Your code is {SECRET_CODE}.",
            html=f"<p>Your code is {SECRET_CODE}.</p>",
        )
        with pytest.raises(MailDeliveryError):
            mailer.send(message)
    finally:
        server.stop()
    [record] = smtp_log(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"Mail delivery through 127.0.0.1:{server.port} failed: {kind}"
    for secret in (SECRET_CODE, LOGGED_PASSWORD, SMTP_PASSWORD, "alice@example.com", "sign-in code"):
        assert secret not in caplog.text


def test_timeout_is_logged(
    hanging_port: int, certificates: Certificates, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that never answers: the log says so."""
    configure_twostep(monkeypatch, certificates, hanging_port, timeout=1.0)
    with pytest.raises(MailDeliveryError):
        send_mail("alice@example.com", "test", CONTEXT)
    [record] = smtp_log(caplog)
    assert record.getMessage() == f"Mail delivery through 127.0.0.1:{hanging_port} failed: no answer within 1 second"


def test_unexpected_error_is_logged_once_with_its_traceback(
    mail_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (not an outage) is one ERROR with the traceback, not an ERROR and a WARNING."""

    def broken(self: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", broken)
    with pytest.raises(MailDeliveryError, match="failed unexpectedly"):
        send_mail("alice@example.com", "test", CONTEXT)
    [record] = smtp_log(caplog)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == f"Mail delivery through 127.0.0.1:{mail_server.port} failed unexpectedly"


def test_a_host_name_is_looked_up_and_each_address_tried(smtp_server: SmtpServer, certificates: Certificates) -> None:
    """By name ("localhost", which may list ::1 first, where nothing listens): delivered, TLS verified by name."""
    mailer = mailer_to("localhost", smtp_server, certificates)
    mailer.send(OutgoingMessage(to="alice@example.com", subject="By name", text="Hello.", html="<p>Hello.</p>"))
    [received] = smtp_server.wait_for(1)
    assert received.over_tls and received.subject == "By name"


def test_a_resolver_that_does_not_answer_is_held_to_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name lookup takes no socket timeout: one that hangs (a dead DNS server) still ends the delivery
    at its deadline, with an error that says it was the lookup."""
    resolver.silence(monkeypatch, "mail.silent.test")
    mailer = SmtpMailer(
        SmtpSettings(host="mail.silent.test", port=25, security="none", from_address="t@example.test", timeout=1.0)
    )
    started = time.monotonic()
    message = OutgoingMessage(to="alice@example.com", subject="s", text="t", html="<p>t</p>")
    with pytest.raises(MailDeliveryError, match=r"could not be looked up within 1 second"):
        mailer.send(message)
    assert time.monotonic() - started < 2.5


def test_a_slow_lookup_of_this_machines_name_does_not_hold_the_delivery(
    smtp_server: SmtpServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name given in EHLO comes from DNS once per process; while DNS is silent, the host name stands in."""
    from django.core.mail.utils import DNS_NAME

    monkeypatch.delattr(DNS_NAME, "_fqdn", raising=False)
    real = socket.getfqdn

    def silent() -> str:
        # Only twostep's lookup is held up: the test's SMTP server asks for its own name too.
        if threading.current_thread().name == "lookup":
            time.sleep(5)
        return real()

    monkeypatch.setattr(socket, "getfqdn", silent)
    mailer = mailer_to("127.0.0.1", smtp_server, certificates)
    started = time.monotonic()
    mailer.send(OutgoingMessage(to="alice@example.com", subject="Named", text="Hello.", html="<p>Hello.</p>"))
    assert time.monotonic() - started < 3.0
    assert smtp_server.wait_for(1)[0].subject == "Named"


def mailer_to(host: str, server: SmtpServer, certificates: Certificates) -> SmtpMailer:
    """A mailer for the test server by ``host``, over STARTTLS verified against the test CA."""
    return SmtpMailer(
        SmtpSettings(
            host=host,
            port=server.port,
            from_address="twostep@example.test",
            timeout=3.0,
            ca_file=str(certificates.ca_file),
        )
    )
