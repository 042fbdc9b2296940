from __future__ import annotations

from typing import Any

from django import forms

from twostep.accounts.models import Role
from twostep.accounts.validators import MAX_PASSWORD_LENGTH
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
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One address per line; the first is primary.",
    )
    phones = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One number per line in international form, e.g. +15551234567; the first is primary.",
    )

    def clean_emails(self) -> list[str]:
        return _lines(self.cleaned_data["emails"])

    def clean_phones(self) -> list[str]:
        return _lines(self.cleaned_data["phones"])


class EditUserForm(ConsoleForm):
    display_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Role.choices)
    is_active = forms.BooleanField(required=False, label="Active (may sign in)")


class ResetPasswordForm(ConsoleForm):
    password = forms.CharField(
        max_length=MAX_PASSWORD_LENGTH,
        strip=False,
        label="New password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="The user must choose their own at the next sign-in. Their sessions end.",
    )


class AddEmailForm(ConsoleForm):
    email = forms.CharField(max_length=254, label="Email address")
    primary = forms.BooleanField(required=False, label="Make primary")


class AddPhoneForm(ConsoleForm):
    phone = forms.CharField(max_length=32, label="Phone number", help_text="International form, e.g. +15551234567.")
    primary = forms.BooleanField(required=False, label="Make primary")


class TwoFactorSettingsForm(ConsoleForm):
    enabled = forms.BooleanField(required=False, label="Enable two-factor authentication")
    methods = forms.MultipleChoiceField(
        choices=[(value, label) for value, label in Method.choices if value in METHODS],
        widget=forms.CheckboxSelectMultiple,
        label="Allowed methods",
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
