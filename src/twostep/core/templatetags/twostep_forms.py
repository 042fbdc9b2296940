"""Template filters for forms rendered with ``as_div``: focus on the first error, the password rules up front.

Both change the bound form's own copy of its fields (Django deep-copies
them for each form), never the form class.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.auth.password_validation import password_validators_help_texts
from django.forms import BaseForm
from django.forms.widgets import ChoiceWidget

register = template.Library()


@register.filter
def focus_first_error(form: BaseForm) -> BaseForm:
    """``form``, with ``autofocus`` on its first field in error and on no other, once it has field errors.

    Without errors the form is left as it is (a field may ask for focus itself).
    """
    if not form.is_bound:
        return form
    first = next((name for name in form.fields if name in form.errors), None)
    if first is not None:
        for field in form.fields.values():
            field.widget.attrs.pop("autofocus", None)
        widget = form.fields[first].widget
        widget.attrs["autofocus"] = True
        if isinstance(widget, ChoiceWidget):
            _focus_first_option_only(widget)
    return form


def _focus_first_option_only(widget: ChoiceWidget) -> None:
    """Checkboxes and radio buttons copy the widget's attributes to every option: keep autofocus on the first."""
    make_option = widget.create_option

    def create_option(*args: Any, **kwargs: Any) -> dict[str, Any]:
        option = make_option(*args, **kwargs)
        if option["index"] not in ("0", "0_0"):
            option["attrs"].pop("autofocus", None)
        return option

    widget.create_option = create_option  # type: ignore[method-assign]


@register.filter
def password_rules_on(form: BaseForm, field_name: str) -> BaseForm:
    """``form``, with the configured password rules added to the help text of ``field_name``.

    Shown before the first try, under the field's label, and tied to the
    input by Django's ``aria-describedby``, rather than only in the error
    after a refused password.
    """
    field = form.fields[field_name]
    rules = " ".join(password_validators_help_texts())
    if rules and rules not in str(field.help_text):
        field.help_text = f"{field.help_text} {rules}".strip()
        # A validated form already made its bound fields, each with a copy of
        # the help text it had then: without this, the rules vanished (and
        # their aria-describedby link) exactly when a password was refused.
        form[field_name].help_text = field.help_text
    return form
