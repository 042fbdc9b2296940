"""Which rule covers a proxied request, and what it decides for a given user.

Plain Python, no Django: the rules come from ``[forward_auth]`` in the
configuration (``twostep.config.loader.ForwardAuthRule``).

A path can be read several ways by the application behind the proxy
(``/a/%2e%2e/admin``, ``//admin``, ``/admin;x``, ``/ADMIN`` may all reach
``/admin``; ``/admin/..`` may reach it too, for an application that leaves
dot segments alone), so every reasonable reading is checked and the
strictest decision wins: a rule can never be sidestepped by spelling the
path differently.  A path that holds a control character once decoded (``%00``,
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
#: At most this many spellings are followed (decoding, ``;parameters``, backslashes
#: in every order); a path with more is refused, as no real page has one.
_MAX_SPELLINGS = 64


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


def _spellings(path: str) -> list[str] | None:
    """``path`` and what becomes of it through any order of the steps applications take.

    Decoding once more (up to ``_DECODE_ROUNDS`` times), dropping
    ``;parameters`` (before or after decoding: Tomcat and Spring drop them
    first), and reading backslashes as slashes (or not).  None when there
    are more than ``_MAX_SPELLINGS``.
    """
    seen = {path: 0}  # each spelling with how many decodings made it
    waiting = [path]
    while waiting:
        current = waiting.pop()
        steps = (
            (1, unquote(current, errors="replace")),
            (0, _PATH_PARAMETERS.sub("", current)),
            (0, current.replace("\\", "/")),
        )
        for decoded, following in steps:
            decodings = seen[current] + decoded
            if following in seen or decodings > _DECODE_ROUNDS:
                continue
            if len(seen) >= _MAX_SPELLINGS:
                return None
            seen[following] = decodings
            waiting.append(following)
    return list(seen)


def path_readings(path: str) -> list[str] | None:
    """The ways an application might read ``path`` (no query string), case-folded.

    Every spelling of ``_spellings``, each with its dot segments resolved
    and left alone (slashes collapsed either way), and without trailing dots
    and spaces of its segments.  All readings are case-folded (``fold_case``):
    rules match regardless of case, so the case as sent never decides
    anything.  None for a path with too many spellings to follow.
    """
    spellings = _spellings(path)
    if spellings is None:
        return None
    readings: list[str] = []
    for spelling in spellings:
        folded = fold_case(spelling)
        collapsed = _SLASHES.sub("/", "/" + folded)
        for reading in (_normalise(folded), collapsed):
            # Trimmed once dot segments are resolved, so that ".." keeps its meaning.
            for variant in (reading, _normalise(_TRAILING_DOTS.sub("", reading))):
                if variant not in readings:
                    readings.append(variant)
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
    character in any reading, or a path with too many readings to follow;
    the strictest decision over all readings of the path wins.
    """
    readings = path_readings(path)
    if readings is None or any(_CONTROL.search(reading) for reading in readings):
        return Decision.FORBID
    return max(_decide_one(rules, host, reading, role) for reading in readings)


def allows_destination(rules: Iterable[Rule], host: str) -> bool:
    """True when a rule that can let someone in names ``host``: a valid place to return to after sign-in."""
    return any(rule.policy != "deny" and host_matches(rule.host, host) for rule in rules)
