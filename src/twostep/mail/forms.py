"""Forms of the console's Outgoing mail page."""

from __future__ import annotations

from typing import Any

from django import forms

from twostep.core.runtime import SettingError
from twostep.mail import config

SECURITY_LABELS = [
    ("starttls", "STARTTLS: upgrade to TLS after connecting (usually port 587)"),
    ("tls", "TLS from the start (usually port 465)"),
    ("none", "None: plain text (only for a relay on this machine)"),
]


def _checked(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except SettingError as exc:
        raise forms.ValidationError(str(exc)) from None


class _Form(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SmtpSettingsForm(_Form):
    host = forms.CharField(
        required=False,
        max_length=253,
        label="SMTP server",
        help_text="For example smtp.example.com. Empty: no mail is sent.",
    )
    port = forms.IntegerField(
        min_value=1, max_value=65535, label="Port", widget=forms.TextInput(attrs={"inputmode": "numeric"})
    )
    security = forms.ChoiceField(choices=SECURITY_LABELS, label="Connection security", widget=forms.RadioSelect)
    username = forms.CharField(
        required=False,
        max_length=254,
        label="Username",
        help_text="Empty: no login.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    password = forms.CharField(
        required=False,
        max_length=1024,
        strip=False,
        label="Password",
        help_text="Write-only: it is stored encrypted and never shown. Leave empty to keep the current one.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_password = forms.BooleanField(required=False, label="Remove the stored password")
    from_address = forms.CharField(
        required=False,
        max_length=254,
        label="From address",
        # Django does not escape help texts.
        help_text="For example twostep@example.com, or with a name: Sign-in &lt;twostep@example.com&gt;. "
        "Many servers only accept their own domain.",
    )

    def clean_host(self) -> str:
        return str(_checked(config.check_host, self.cleaned_data["host"]))

    def clean_username(self) -> str:
        return str(_checked(config.check_username, self.cleaned_data["username"]))

    def clean_from_address(self) -> str:
        return str(_checked(config.check_from_address, self.cleaned_data["from_address"]))

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if "\n" in password or "\r" in password:
            raise forms.ValidationError("The password must be on one line.")
        return password


class TestEmailForm(_Form):
    to = forms.CharField(
        max_length=254,
        label="Send a test email to",
        help_text="Uses the saved settings: save your changes first.",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}),
    )
