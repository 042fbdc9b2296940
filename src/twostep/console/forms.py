from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.utils.html import format_html

from twostep.accounts.models import Role, User
from twostep.accounts.services import check_password_rules
from twostep.accounts.validators import MAX_PASSWORD_LENGTH, normalize_email, normalize_username, textable_phone
from twostep.core.runtime import DEFINITIONS, METHOD_REQUIREMENTS, METHODS, SettingError
from twostep.mfa.models import Method


class ConsoleForm(forms.Form):
    """Labels without Django's trailing colon: the layout puts them above their fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


class CreateUserForm(ConsoleForm):
    username = forms.CharField(max_length=64)
    display_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.USER)
    password = forms.CharField(
        max_length=MAX_PASSWORD_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="The user must choose their own password at first sign-in.",
    )
    emails = forms.CharField(
        required=False,
        label="Email addresses",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One address per line; the first is primary.",
    )
    phones = forms.CharField(
        required=False,
        label="Phone numbers",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One number per line in international form, e.g. +15551234567; the first is primary.",
    )

    # Every field is checked with the rules the service applies, so that one
    # submission shows every problem on its own field, naming the bad line.
    def clean_username(self) -> str:
        return normalize_username(self.cleaned_data["username"])

    def clean_emails(self) -> list[str]:
        return _each_line(_lines(self.cleaned_data["emails"]), normalize_email)

    def clean_phones(self) -> list[str]:
        return _each_line(_lines(self.cleaned_data["phones"]), textable_phone)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password"):
            try:
                check_password_rules(data["password"], User(username=data.get("username", "")))
            except forms.ValidationError as exc:
                self.add_error("password", exc)
            else:
                if self.errors:
                    # Another field was refused: the page comes back with this one empty.
                    field = self.fields["password"]
                    field.help_text = f"Type it again: a password is never shown back. {field.help_text}"
        return data


def _each_line(lines: list[str], check: Callable[[str], str]) -> list[str]:
    """``check`` applied to each line; raises one ValidationError naming every bad line."""
    checked, problems = [], []
    for line in lines:
        try:
            checked.append(check(line))
        except forms.ValidationError as exc:
            said = " ".join(exc.messages)
            # Most messages name the value already ("'12345' is not in international form").
            problems.append(said if repr(line) in said or line in said else f"{line!r}: {said}")
    if problems:
        raise forms.ValidationError(problems)
    return checked


class EditUserForm(ConsoleForm):
    """A user's name, role and active flag, each posted with the value the page showed (a hidden input).

    Another administrator may deactivate or demote the user while this page
    is open: saving it must change only what this administrator changed, not
    put back the values the page was loaded with.
    """

    display_name = forms.CharField(max_length=150, required=False, show_hidden_initial=True)
    role = forms.ChoiceField(choices=Role.choices, show_hidden_initial=True)
    is_active = forms.BooleanField(required=False, label="Active (may sign in)", show_hidden_initial=True)

    def edited(self) -> dict[str, Any]:
        """The cleaned values changed from what the page showed; a field posted without it counts as changed."""
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name in self.changed_data or self.add_initial_prefix(name) not in self.data
        }


class ResetPasswordForm(ConsoleForm):
    password = forms.CharField(
        max_length=MAX_PASSWORD_LENGTH,
        strip=False,
        label="New password",
        error_messages={"required": "Enter a new password."},
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="The user must choose their own at the next sign-in. Their sessions end.",
    )


class DeleteUserForm(ConsoleForm):
    """The username typed again, exactly, before a user is deleted."""

    confirm = forms.CharField(
        required=False, strip=False, widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"})
    )

    def __init__(self, username: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "delete_%s")
        super().__init__(*args, **kwargs)
        self.username = username
        self.fields["confirm"].label = format_html("Type <strong>{}</strong> to confirm", username)

    def clean_confirm(self) -> str:
        typed: str = self.cleaned_data["confirm"]
        if typed != self.username:
            raise forms.ValidationError(f"Type {self.username} exactly to confirm the deletion.")
        return typed


class AddEmailForm(ConsoleForm):
    email = forms.CharField(max_length=254, label="Email address")
    primary = forms.BooleanField(required=False, label="Make primary")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Both forms share a page and a field name: their ids must differ.
        kwargs.setdefault("auto_id", "email_%s")
        super().__init__(*args, **kwargs)


class AddPhoneForm(ConsoleForm):
    phone = forms.CharField(max_length=32, label="Phone number", help_text="International form, e.g. +15551234567.")
    primary = forms.BooleanField(required=False, label="Make primary")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "phone_%s")
        super().__init__(*args, **kwargs)


class TwoFactorSettingsForm(ConsoleForm):
    enabled = forms.BooleanField(required=False, label="Enable two-factor authentication")
    methods = forms.MultipleChoiceField(
        choices=[(value, label) for value, label in Method.choices if value in METHODS],
        widget=forms.CheckboxSelectMultiple,
        label="Allowed methods",
        error_messages={"required": "Choose at least one method (to allow none, turn two-factor authentication off)."},
    )
    #: The number of affected users the admin saw and accepted.
    confirm = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Why a method cannot be allowed now (e.g. SMS without a provider), shown next to it.
        self.method_problems = {method: problem() for method, problem in METHOD_REQUIREMENTS.items()}

    def clean_methods(self) -> list[str]:
        try:
            return list(DEFINITIONS["two_factor.methods"].check(list(self.cleaned_data["methods"])))
        except SettingError as exc:
            raise forms.ValidationError(str(exc)) from None
