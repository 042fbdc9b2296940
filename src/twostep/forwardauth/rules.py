"""Which rule covers a proxied request, and what it decides for a given user.

Plain Python, no Django: the rules come from ``[forward_auth]`` in the
configuration (``twostep.config.loader.ForwardAuthRule``).

A path can be read several ways by the application behind the proxy
(``/a/%2e%2e/admin``, ``//admin``, ``/admin;x``, ``/ADMIN`` may all reach
``/admin``), so every reasonable reading is checked and the strictest
decision wins: a rule can never be sidestepped by spelling the path
differently.  A path that holds a control character once decoded (``%00``,
a tab, a line break) is refused outright: applications disagree on where
such a path ends, and no real page needs one.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Protocol
from urllib.parse import unquote

_SLASHES = re.compile(r"/{2,}")
_PATH_PARAMETERS = re.compile(r";[^/]*")
#: Trailing dots and spaces of a segment, which Windows servers drop (``/admin.`` is ``/admin``).
_TRAILING_DOTS = re.compile(r"(?<=[^/])[. ]+(?=/|$)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Percent-decoding stops after this many rounds (double-encoding tricks).
_DECODE_ROUNDS = 4


class Rule(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def path_prefix(self) -> str: ...
    @property
    def policy(self) -> str | list[str]: ...


class Decision(IntEnum):
    """Ordered from most to least permissive; the largest of several wins."""

    ALLOW = 0
    #: Not signed in, and signing in could help.
    SIGN_IN = 1
    FORBID = 2


def host_matches(pattern: str, host: str) -> bool:
    """``host`` (lower case, no port) is ``pattern`` or, for ``*.domain``, strictly below it."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def fold_case(text: str) -> str:
    """``text`` as path rules compare it: case-folded (``/ADMIN`` and ``/Admin`` are ``/admin``).

    The configuration loader folds each rule's ``path_prefix`` with this, and
    ``path_readings`` folds every reading, so the two always agree.
    """
    return text.casefold()


def path_matches(prefix: str, path: str) -> bool:
    """``/wiki`` covers ``/wiki`` and ``/wiki/...`` but not ``/wikipedia``; ``/`` covers all.

    Compared case-insensitively: many applications (any on Windows or macOS
    file systems, many routers) serve ``/Wiki`` and ``/wiki`` alike, so a
    rule must cover both, whichever way either is written.
    """
    if prefix == "/":
        return True
    prefix, path = fold_case(prefix), fold_case(path)
    return path == prefix or path.startswith(prefix + "/")


def _normalise(path: str) -> str:
    path = _SLASHES.sub("/", "/" + path)
    resolved = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it); the slashes were
    # already collapsed, so this only removes dot segments.
    return _SLASHES.sub("/", resolved)


def path_readings(path: str) -> list[str]:
    """The ways an application might read ``path`` (no query string), normalised.

    As sent; percent-decoded (repeatedly, with backslashes as slashes);
    each without ``;parameters``, and without trailing dots and spaces of its
    segments.  All readings are case-folded (``fold_case``): rules match
    regardless of case, so the case as sent never decides anything.
    """
    decoded = path
    for _ in range(_DECODE_ROUNDS):
        once = unquote(decoded, errors="replace")
        if once == decoded:
            break
        decoded = once
    readings: list[str] = []
    for base in (path, decoded.replace("\\", "/")):
        for variant in (base, _PATH_PARAMETERS.sub("", base)):
            normalised = _normalise(fold_case(variant))
            # Trimmed once dot segments are resolved, so that ".." keeps its meaning.
            for reading in (normalised, _normalise(_TRAILING_DOTS.sub("", normalised))):
                if reading not in readings:
                    readings.append(reading)
    return readings


def first_match(rules: Iterable[Rule], host: str, path: str) -> Rule | None:
    """The first rule whose host and path prefix cover the request, if any."""
    for rule in rules:
        if host_matches(rule.host, host) and path_matches(rule.path_prefix, path):
            return rule
    return None


def _decide_one(rules: Sequence[Rule], host: str, path: str, role: str | None) -> Decision:
    rule = first_match(rules, host, path)
    if rule is None or rule.policy == "deny":
        return Decision.FORBID
    if role is None:
        return Decision.SIGN_IN
    if rule.policy == "signed_in" or (isinstance(rule.policy, list) and role in rule.policy):
        return Decision.ALLOW
    return Decision.FORBID


def decide(rules: Sequence[Rule], host: str, path: str, role: str | None) -> Decision:
    """What the rules say about ``host`` + ``path`` for a user with ``role`` (None: not signed in).

    No matching rule, or a ``deny`` rule, forbids; so does a control
    character in any reading; the strictest decision over all readings of
    the path wins.
    """
    readings = path_readings(path)
    if any(_CONTROL.search(reading) for reading in readings):
        return Decision.FORBID
    return max(_decide_one(rules, host, reading, role) for reading in readings)


def allows_destination(rules: Iterable[Rule], host: str) -> bool:
    """True when a rule that can let someone in names ``host``: a valid place to return to after sign-in."""
    return any(rule.policy != "deny" and host_matches(rule.host, host) for rule in rules)
