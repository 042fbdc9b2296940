"""The Authentication page compares this instance's clock with the database server's."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test import Client

from tests.conftest import sign_in
from twostep.accounts.models import User
from twostep.core import clockcheck

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client, admin: User) -> Client:
    assert sign_in(client, admin.username).status_code == 302
    return client


def test_an_instance_clock_off_from_the_database_is_shown(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database clock 5 minutes ahead (as with `faketime -f -5m` on this instance): a visible warning."""
    monkeypatch.setattr(clockcheck, "_database_timestamp", lambda: time.time() + 300)
    page = admin_client.get("/admin/authentication").content.decode()
    assert 'id="clock-warning"' in page and "300 s behind the database server" in page
    monkeypatch.setattr(clockcheck, "_database_timestamp", time.time)
    page = admin_client.get("/admin/authentication").content.decode()
    assert 'id="clock-warning"' not in page and 'id="clock-agrees"' in page


def test_nothing_to_compare_on_sqlite(admin_client: Client) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    page = admin_client.get("/admin/authentication").content.decode()
    assert "Server time now" in page
    assert 'id="clock-warning"' not in page and 'id="clock-agrees"' not in page
