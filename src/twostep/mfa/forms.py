from __future__ import annotations

from django import forms

from twostep.factors import recovery
from twostep.factors.totp import is_well_formed

#: What a user is told when the code field is empty, or holds something that cannot be a code.
ENTER_THE_CODE = "Enter the code."
DIGITS_ONLY = "Enter the 6-digit code (digits only)."
ENTER_A_RECOVERY_CODE = "Enter one of your recovery codes."
NOT_A_RECOVERY_CODE = "A recovery code has 16 letters and digits, such as K7QM-3XPD-9WTR-H2BF."
WRONG_RECOVERY_CODE = "That recovery code didn't work. Check it and try again."


def recovery_code_problem(typed: str) -> str:
    """What makes ``typed`` impossible as a recovery code, or "" when it may be one.

    Said before any check, as ``CodeForm`` does for codes: it can never be
    right, so no try is spent on it.
    """
    if not typed.strip():
        return ENTER_A_RECOVERY_CODE
    return NOT_A_RECOVERY_CODE if recovery.normalise(typed) is None else ""


class CodeForm(forms.Form):
    """A one-time code: exactly six ASCII digits, nothing stripped.

    Anything else is refused here with its own message, before any
    verification: it can never be right, so it is not counted as a wrong
    code (the services refuse it again, for callers without this form).
    The input has no ``maxlength``: a pasted "053 243" must not be cut to
    "053 24"; ``code_input.js`` removes the spaces and dashes in the browser.
    """

    code = forms.CharField(
        strip=False,
        error_messages={"required": ENTER_THE_CODE},
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9]{6}",
                "title": "6 digits",
                "autofocus": True,
                "spellcheck": "false",
            }
        ),
    )

    def clean_code(self) -> str:
        code: str = self.cleaned_data["code"]
        if not is_well_formed(code):
            raise forms.ValidationError(DIGITS_ONLY, code="malformed_code")
        return code
