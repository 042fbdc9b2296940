"""Message templates: shipped defaults, admin overrides from the data directory, no code in subjects."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.mail.smtp_server import SmtpServer
from twostep.mail import MailDeliveryError, rendering, send_mail

pytestmark = pytest.mark.django_db

CODE_CONTEXT = {
    "code": "042917",
    "name": "Alice <script>",
    "username": "alice",
    "minutes": 10,
    "requested_at": "2030-01-01 09:00",
    "ip": "192.0.2.7",
    "site_name": "twostep",
}


@pytest.fixture
def override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty data directory whose templates/ folder overrides the shipped messages."""
    monkeypatch.setattr(settings, "DATA_DIR", tmp_path)
    yield tmp_path / "templates" / "mail"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("name", ["login_code", "enrol_code", "step_up_code", "email_check_code"])
def test_code_messages_carry_the_code_in_both_parts_but_not_the_subject(name: str) -> None:
    """The shipped code messages show the code in text and HTML, never in the subject (SEC-06)."""
    mail = rendering.render(name, CODE_CONTEXT)
    assert "042917" in mail.text and "042917" in mail.html
    assert "042917" not in mail.subject
    assert "\n" not in mail.subject
    assert "192.0.2.7" in mail.text


def test_html_part_escapes_values_and_tracks_nothing() -> None:
    """Values are HTML-escaped; the HTML part loads nothing remote (no images, links or scripts) (SEC-09)."""
    mail = rendering.render("login_code", CODE_CONTEXT)
    assert "Alice &lt;script&gt;" in mail.html and "<script>" not in mail.html
    assert "Alice <script>" in mail.text
    assert not re.search(r"<img|<a\s|<link|<script|https?://|url\(", mail.html, re.IGNORECASE)


def test_override_from_the_data_directory_wins(override: Path) -> None:
    """A file under <data_dir>/templates/mail/ replaces the shipped one, applied at the next message."""
    write(override / "login_code" / "body.txt", "Code for {{ username }}: {{ code }}")
    assert rendering.render("login_code", CODE_CONTEXT).text == "Code for alice: 042917\n"
    write(override / "login_code" / "body.txt", "Changed: {{ code }}")
    assert rendering.render("login_code", CODE_CONTEXT).text == "Changed: 042917\n"
    # Files not overridden still come from the package.
    assert rendering.render("login_code", CODE_CONTEXT).subject == "Your twostep sign-in code"


def test_an_overridden_subject_cannot_reveal_the_code(override: Path) -> None:
    """Even a subject template that asks for the code gets nothing: the code is not in its context."""
    write(override / "login_code" / "subject.txt", "Your code is {{ code }}{{ code|default:'' }}")
    mail = rendering.render("login_code", CODE_CONTEXT)
    assert "042917" not in mail.subject
    assert mail.subject == "Your code is"


def test_a_broken_override_is_a_delivery_error_naming_the_template(override: Path, mail_server: SmtpServer) -> None:
    """A template with a syntax error stops the send with an error an admin can act on; nothing goes out."""
    write(override / "test" / "body.html", "{% if %}")
    with pytest.raises(MailDeliveryError, match="mail template 'test' cannot be used"):
        send_mail("alice@example.com", "test", {})
    assert mail_server.messages() == []


def test_message_names_cannot_walk_the_file_system() -> None:
    """Only plain names are accepted: no path can reach files outside the template folders."""
    with pytest.raises(ValueError, match="not a message name"):
        rendering.render("../../etc/passwd", {})
