"""Runtime settings: what admins change in the console, stored in the database.

Each setting is declared once here with its type, default and check; the
console, the API and ``twostep settings show|set`` all go through
``get_setting`` / ``set_setting``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twostep.core import rawsql
from twostep.core.models import Setting

_STORED = rawsql.Columns(Setting, ["key", "value"])

METHODS = ("totp", "email", "sms")


class SettingError(ValueError):
    """Unknown key, or a value of the wrong type; the message says which."""


@dataclass(frozen=True)
class Definition:
    key: str
    default: Any
    parse: Callable[[str], Any]
    check: Callable[[Any], Any]
    help: str
    #: Where the setting is changed instead, when it is one part of a larger
    #: configuration checked as a whole (the SMS provider, its options and
    #: secrets): ``settings set`` and the API refuse it and name this place.
    managed_by: str = ""


def parse_bool(text: str) -> bool:
    """``true/yes/on/1`` or ``false/no/off/0``, as typed on a command line; raises SettingError."""
    lowered = text.strip().lower()
    if lowered in {"true", "yes", "on", "1"}:
        return True
    if lowered in {"false", "no", "off", "0"}:
        return False
    raise SettingError(f"{text!r} is not true or false")


def check_bool(value: Any) -> bool:
    """``value`` if it is a boolean; raises SettingError."""
    if not isinstance(value, bool):
        raise SettingError(f"{value!r} is not true or false")
    return value


def _parse_methods(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


#: Preconditions of methods, registered by the apps that provide them: each
#: returns why its method cannot be allowed now (e.g. SMS without a
#: provider), or None.
METHOD_REQUIREMENTS: dict[str, Callable[[], str | None]] = {}


def register_method_requirement(method: str, problem: Callable[[], str | None]) -> None:
    """Refuse ``method`` in ``two_factor.methods`` while ``problem()`` returns a reason."""
    METHOD_REQUIREMENTS[method] = problem


def _check_methods(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SettingError("must be a list of method names")
    unknown = sorted(set(value) - set(METHODS))
    if unknown:
        raise SettingError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if not value:
        raise SettingError("at least one method must be allowed")
    for method in value:
        requirement = METHOD_REQUIREMENTS.get(method)
        problem = requirement() if requirement is not None else None
        if problem:
            raise SettingError(problem)
    return [method for method in METHODS if method in value]


DEFINITIONS: dict[str, Definition] = {
    d.key: d
    for d in (
        Definition(
            "two_factor.enabled",
            False,
            parse_bool,
            check_bool,
            "Ask users who enrolled a second factor for it at sign-in.",
        ),
        Definition(
            "two_factor.methods",
            ["totp"],
            _parse_methods,
            _check_methods,
            "Second-factor methods users may enrol: totp, email, sms "
            "(comma-separated on the command line, a JSON list in the API).",
        ),
    )
}


#: Keys that are not set one by one (``settings set``, the API), and where they are set instead.
SET_ELSEWHERE: dict[str, str] = {}


def register_setting(definition: Definition) -> None:
    """Declare a runtime setting (apps call this from ``AppConfig.ready``)."""
    DEFINITIONS[definition.key] = definition
    if definition.managed_by:
        SET_ELSEWHERE[definition.key] = definition.managed_by


def register_set_elsewhere(key: str, where: str) -> None:
    """Name where ``key``, which people may try to set as a runtime setting, is set instead (the SMTP password)."""
    SET_ELSEWHERE[key] = where


def _definition(key: str) -> Definition:
    try:
        return DEFINITIONS[key]
    except KeyError:
        raise SettingError(f"unknown setting {key!r}; known: {', '.join(sorted(DEFINITIONS))}") from None


def get_setting(key: str) -> Any:
    """Return the stored value of ``key``, or its default.

    Raises:
        SettingError: ``key`` is not a known setting.
    """
    definition = _definition(key)
    row = Setting.objects.filter(key=key).values_list("value", flat=True).first()
    return definition.default if row is None else row


def get_settings(*keys: str) -> dict[str, Any]:
    """Several settings in one query."""
    definitions = {key: _definition(key) for key in keys}
    # Hand-written: the second step reads two settings on every attempt.
    stored = dict(_STORED.convert(row) for row in rawsql.fetchall(_select_settings(len(keys)), keys))
    return {key: stored.get(key, definitions[key].default) for key in keys}


@functools.cache
def _select_settings(count: int) -> str:
    where = f"s.{rawsql.column(Setting, 'key')} IN ({', '.join(['%s'] * count)})"
    return f"SELECT {_STORED.select('s')} FROM {rawsql.table(Setting)} s WHERE {where}"  # noqa: S608


def set_setting(key: str, value: Any) -> Any:
    """Validate and store ``value`` for ``key``; return the stored value.

    Raises:
        SettingError: unknown key or invalid value.
    """
    checked = _definition(key).check(value)
    Setting.objects.update_or_create(key=key, defaults={"value": checked})
    return checked


def lock_settings(keys: Iterable[str]) -> None:
    """Lock the rows of ``keys`` in sorted order, for a transaction that then sets them in another order.

    Two transactions that wrote the same settings in different orders (two
    administrators' changes, each in its payload's order) deadlocked on
    PostgreSQL.  A key without a row gets one holding its default (no
    change to what is read), so that the rows are inserted in this order too.
    """
    ordered = sorted(set(keys))
    Setting.objects.bulk_create(
        [Setting(key=key, value=_definition(key).default) for key in ordered], ignore_conflicts=True
    )
    list(Setting.objects.select_for_update().filter(key__in=ordered).order_by("key").values_list("key", flat=True))


def check_settable(key: str) -> None:
    """Whether ``key`` may be set on its own, by ``settings set`` or the API.

    Raises:
        SettingError: unknown key, or one that is set elsewhere: a secret, or
            a part of a configuration checked as a whole (the message says where).
    """
    if key in SET_ELSEWHERE:
        raise SettingError(f"set {key} with {SET_ELSEWHERE[key]}")
    _definition(key)


def set_setting_from_text(key: str, text: str) -> Any:
    """Parse ``text`` as typed on a command line, then ``set_setting``.

    Raises:
        SettingError: see ``check_settable``; or the text or value is invalid.
    """
    check_settable(key)
    return set_setting(key, _definition(key).parse(text))


def render_value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return json.dumps(value)
