"""Finding SMS providers: every one, built-in or third-party, through one entry-point group.

twostep's own providers are declared in its ``pyproject.toml`` under
``[project.entry-points."twostep.sms_providers"]`` exactly as a third-party
package declares its own, so there is a single path to a provider.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import httpx

from twostep.sms.base import ConfigurationError, SMSProvider

GROUP = "twostep.sms_providers"

logger = logging.getLogger("twostep.sms")


@dataclass(frozen=True)
class Discovery:
    """What the entry-point group holds: loadable providers, and those that failed to load."""

    providers: dict[str, type[SMSProvider]]
    broken: dict[str, str]


_cache: Discovery | None = None


def _check(entry: EntryPoint, loaded: object) -> type[SMSProvider]:
    if not isinstance(loaded, type):
        raise TypeError(f"{entry.value} is not a class")
    for attribute in ("name", "label", "options", "from_options", "send", "close"):
        if not hasattr(loaded, attribute):
            raise TypeError(f"{entry.value} lacks {attribute!r} (see twostep.sms.base.SMSProvider)")
    if loaded.name != entry.name:  # type: ignore[attr-defined]
        raise TypeError(f"{entry.value}.name is {loaded.name!r} but its entry point is {entry.name!r}")  # type: ignore[attr-defined]
    return loaded  # type: ignore[return-value]


def discover(*, refresh: bool = False) -> Discovery:
    """Load every provider of the entry-point group (once per process unless ``refresh``).

    A provider whose import fails, or that does not have the interface's
    shape, is listed in ``broken`` with the reason instead of breaking the others.
    """
    global _cache
    if _cache is not None and not refresh:
        return _cache
    providers: dict[str, type[SMSProvider]] = {}
    broken: dict[str, str] = {}
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if entry.name in providers or entry.name in broken:
            broken[entry.name] = "declared by more than one installed package"
            providers.pop(entry.name, None)
            continue
        try:
            providers[entry.name] = _check(entry, entry.load())
        except Exception as exc:  # a third party's import error must not take the others down
            broken[entry.name] = f"{type(exc).__name__}: {exc}"
            logger.warning("SMS provider %r cannot be loaded: %s", entry.name, broken[entry.name])
    _cache = Discovery(providers, broken)
    return _cache


def available() -> dict[str, type[SMSProvider]]:
    """The loadable providers by name."""
    return dict(discover().providers)


def provider_class(name: str) -> type[SMSProvider]:
    """The provider class registered as ``name``.

    Raises:
        ConfigurationError: no such provider, or it failed to load; the
            message lists the available names.
    """
    found = discover()
    if name in found.providers:
        return found.providers[name]
    names = ", ".join(sorted(found.providers)) or "none"
    if name in found.broken:
        raise ConfigurationError(f"SMS provider {name!r} is installed but cannot be loaded: {found.broken[name]}")
    raise ConfigurationError(f"Unknown SMS provider {name!r}; available: {names}.")


def load_provider(
    name: str, options: Mapping[str, str], *, http: httpx.Client | None = None, debug: bool = False
) -> SMSProvider:
    """Build the provider ``name`` from ``options`` (validated now, not at the first send).

    Raises:
        ConfigurationError: unknown provider, or invalid options.
    """
    return provider_class(name).from_options(options, http=http, debug=debug)
