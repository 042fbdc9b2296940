from __future__ import annotations

from typing import Any

from django import forms

from twostep.accounts.validators import MAX_PASSWORD_LENGTH


class LabelledForm(forms.Form):
    """Labels without Django's trailing colon: the layout puts them above their fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class LoginForm(LabelledForm):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True})
    )
    password = forms.CharField(
        max_length=MAX_PASSWORD_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class PasswordForm(LabelledForm):
    """Re-entering the current password before a sensitive change."""

    password = forms.CharField(
        max_length=MAX_PASSWORD_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class ChangePasswordForm(LabelledForm):
    current_password = forms.CharField(
        max_length=MAX_PASSWORD_LENGTH,
        strip=False,
        # The page's one task (and, after a password set by an administrator, the only way on).
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    new_password = forms.CharField(
        max_length=MAX_PASSWORD_LENGTH, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    repeat_password = forms.CharField(
        max_length=MAX_PASSWORD_LENGTH, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_password") and data.get("new_password") != data.get("repeat_password"):
            self.add_error("repeat_password", "The two new passwords differ.")
        elif data.get("new_password") and data.get("new_password") == data.get("current_password"):
            # Above all after a reset: the administrator who chose that password knows it.
            self.add_error("new_password", "Choose a password different from your current one.")
        return data
