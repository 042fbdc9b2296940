from __future__ import annotations

from django import forms


class CodeForm(forms.Form):
    """A one-time code.  Checked for exactly six ASCII digits by the service, not here,
    so that a malformed code counts as a failed try like any other."""

    code = forms.CharField(
        max_length=32,
        strip=False,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9]{6}",
                "maxlength": "6",
                "autofocus": True,
                "spellcheck": "false",
            }
        ),
    )
