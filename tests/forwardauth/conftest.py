"""Fixtures for forward-auth: a configuration with rules and a trusted proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from twostep.config.loader import ForwardAuthConfig, TwostepConfig

PUBLIC_URL = "https://login.example.com"

#: The rules most tests use: a wiki for everyone signed in, an admin area, a deny.
RULES: list[dict[str, Any]] = [
    {"host": "wiki.example.com", "policy": "signed_in"},
    {"host": "grafana.example.com", "path_prefix": "/admin", "policy": ["admin"]},
    {"host": "grafana.example.com", "policy": "signed_in"},
    {"host": "closed.example.com", "policy": "deny"},
]


def make_config(
    rules: list[dict[str, Any]] | None = None,
    *,
    trusted_proxies: list[str] | None = None,
    public_url: str = PUBLIC_URL,
    cookie_domain: str = "",
) -> TwostepConfig:
    base: TwostepConfig = settings.CONFIG
    server = base.server.model_copy(
        update={
            "public_url": public_url,
            "trusted_proxies": ["127.0.0.1"] if trusted_proxies is None else trusted_proxies,
        }
    )
    forward_auth = ForwardAuthConfig.model_validate(
        {"rules": RULES if rules is None else rules, "session_cookie_domain": cookie_domain}
    )
    return base.model_copy(update={"server": server, "forward_auth": forward_auth})


@pytest.fixture
def forward_config() -> Iterator[Callable[..., TwostepConfig]]:
    """Install a forward-auth configuration for the test: ``forward_config(rules=..., trusted_proxies=...)``."""
    overrides: list[Any] = []

    def install(**kwargs: Any) -> TwostepConfig:
        config = make_config(**kwargs)
        override = override_settings(CONFIG=config)
        override.enable()
        overrides.append(override)
        return config

    install()
    yield install
    for override in reversed(overrides):
        override.disable()
