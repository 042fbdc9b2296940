"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1), and fixtures around it.

``SmtpServer`` speaks SMTP over a real socket: STARTTLS or implicit TLS with a
certificate signed by a certificate authority generated for the test run,
optional AUTH, and switches to refuse recipients or messages with a 5xx
reply.  ``hanging_port`` listens but never answers; ``closed_port`` has
nobody listening.  Import the fixtures into a conftest to use them.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# aiosmtpd logs every SMTP line at INFO; the tests read the messages instead.
logging.getLogger("mail.log").setLevel(logging.WARNING)

SMTP_USER = "mailer"
SMTP_PASSWORD = "relay password 42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Certificates:
    """PEM files: a test CA, and a server certificate it signed for 127.0.0.1 and localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path) -> Certificates:
    """Generate a CA and a server certificate for 127.0.0.1/localhost into ``directory``."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("twostep test CA"))
        .issuer_name(_name("twostep test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificates(ca_file, cert_file, key_file)


@dataclass
class Received:
    """One message as the server received it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    #: The SMTP session had switched to TLS when the message came.
    over_tls: bool
    #: The user name the client logged in with, or None.
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None, "no text/plain part"
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None, "no text/html part"
        return str(part.get_content())  # type: ignore[attr-defined]

    def code(self) -> str:
        """The 6-digit code on a line of its own in the text part."""
        match = re.search(r"^\s+([0-9]{6})\s*$", self.text, re.MULTILINE)
        assert match is not None, f"no code in: {self.text}"
        return match.group(1)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.server.rcpt_reply:
            return self.server.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.data_reply:
            await asyncio.sleep(self.server.data_delay)
            return self.server.data_reply
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.server.lock:
            self.server.received.append(
                Received(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,  # type: ignore[arg-type]
                    # session.ssl is set by STARTTLS; implicit TLS shows on the transport.
                    over_tls=session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
                    login=login,
                )
            )
        if self.server.data_delay:
            await asyncio.sleep(self.server.data_delay)
        return "250 Message accepted"


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword) and data.login == SMTP_USER.encode() and data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


class SmtpServer:
    """aiosmtpd on 127.0.0.1 with a generated certificate.

    ``mode``: ``starttls`` (STARTTLS required before MAIL), ``tls`` (implicit
    TLS) or ``plain`` (no TLS offered).  ``auth``: require a login
    (``SMTP_USER`` / ``SMTP_PASSWORD``).  Set ``rcpt_reply`` or
    ``data_reply`` to a 5xx line to refuse; ``data_delay`` to keep a received
    message's confirmation waiting that many seconds.
    """

    def __init__(self, certificates: Certificates, *, mode: str = "starttls", auth: bool = False) -> None:
        self.certificates = certificates
        self.mode = mode
        self.port = free_port()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.rcpt_reply = ""
        self.data_reply = ""
        self.data_delay = 0.0
        kwargs: dict[str, Any] = {}
        context = certificates.server_context()
        if mode == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif mode == "tls":
            kwargs.update(ssl_context=context)
        if auth:
            kwargs.update(authenticator=_authenticator, auth_required=True, auth_require_tls=mode != "plain")
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages()
            if len(messages) >= count:
                return messages
            time.sleep(0.05)
        raise AssertionError(f"expected {count} message(s), got {len(self.messages())}")

    def wait_for_match(
        self, *, to: str | None = None, subject: str = "", since: int = 0, timeout: float = 10.0
    ) -> Received:
        """The first message after the ``since`` first ones sent to ``to`` with ``subject`` in its subject.

        Other mail (security notices, for instance) may arrive in between; it is skipped.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for received in self.messages()[since:]:
                if (to is None or to in received.rcpt_tos) and subject in received.subject:
                    return received
            time.sleep(0.05)
        raise AssertionError(f"no message to {to} about {subject!r}; got {[m.subject for m in self.messages()]}")

    def last_code(self, to: str | None = None) -> str:
        """The code in the newest message (to ``to``, when given)."""
        messages = [m for m in self.messages() if to is None or to in m.rcpt_tos]
        assert messages, f"no message{' to ' + to if to else ''}"
        return messages[-1].code()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA and a server certificate generated once for the test run."""
    return make_certificates(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture
def smtp_server(certificates: Certificates) -> Iterator[SmtpServer]:
    """A running SMTP server that requires STARTTLS."""
    server = SmtpServer(certificates, mode="starttls").start()
    yield server
    server.stop()


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that accepts TCP connections but never says a word (a hung SMTP server)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    yield int(listener.getsockname()[1])
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A port nobody listens on (SMTP down)."""
    return free_port()


def configure_twostep(
    monkeypatch: pytest.MonkeyPatch,
    certificates: Certificates,
    port: int,
    *,
    security: str = "starttls",
    timeout: float = 3.0,
    username: str = "",
    password: str = "",
    trust_test_ca: bool = True,
    verify_certificate: bool = True,
) -> None:
    """Point this process's twostep at 127.0.0.1:``port`` (runtime settings + [email] config)."""
    from django.conf import settings

    from twostep.config.loader import EmailConfig
    from twostep.core.runtime import set_setting
    from twostep.mail import config as mail_config

    monkeypatch.setattr(
        settings.CONFIG,
        "email",
        EmailConfig(
            timeout=timeout,
            ca_file=str(certificates.ca_file) if trust_test_ca else "",
            verify_certificate=verify_certificate,
        ),
    )
    set_setting("email.host", "127.0.0.1")
    set_setting("email.port", port)
    set_setting("email.security", security)
    set_setting("email.username", username)
    set_setting("email.from_address", "Sign-in <twostep@example.test>")
    if password:
        mail_config.set_password(password)


@pytest.fixture
def mail_server(
    smtp_server: SmtpServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch, db: None
) -> SmtpServer:
    """The STARTTLS server, with twostep configured to send through it (trusting the test CA)."""
    configure_twostep(monkeypatch, certificates, smtp_server.port)
    return smtp_server
