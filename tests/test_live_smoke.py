"""The production server starts from `twostep init` and answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.live


def test_server_serves_login_page(live_server_factory: Callable[..., Any]) -> None:
    """`twostep serve` runs gunicorn on the initialised data directory."""
    server = live_server_factory()
    response = httpx.get(f"{server.url}/login")
    assert response.status_code == 200
    assert "gunicorn" in response.headers.get("server", "")
    assert 'name="password"' in response.text
