"""The session store's hand-written statements behave as Django's database sessions do."""

from __future__ import annotations

import string
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from twostep.core import clock
from twostep.usersessions.backend import SessionStore, new_session_key, stored_key
from twostep.usersessions.models import UserSession

pytestmark = pytest.mark.django_db


def stored(data: dict[str, object]) -> SessionStore:
    store = SessionStore()
    store.update(data)
    store.create()
    store.save()
    return store


def test_round_trip_through_the_table() -> None:
    """What one request saves, the next one loads by its key."""
    store = stored({"colour": "blue", "count": 3})
    again = SessionStore(store.session_key)
    assert again["colour"] == "blue" and again["count"] == 3
    row = UserSession.objects.get(session_key=stored_key(store.session_key))
    assert row.expire_date > row.created_at


def test_expired_or_unknown_session_loads_empty() -> None:
    """A key that is not in the table (or has expired) gives an empty session and no key (SES-02)."""
    store = stored({"colour": "blue"})
    UserSession.objects.filter(session_key=stored_key(store.session_key)).update(
        expire_date=UserSession.objects.get().created_at
    )
    for key in (store.session_key, "x" * 32):
        fresh = SessionStore(key)
        assert fresh.load() == {}
        assert fresh.session_key is None


def test_cycle_key_renames_the_row_and_keeps_the_data() -> None:
    """A new key for the same data; the old key no longer loads anything."""
    store = stored({"pending": "token"})
    old = store.session_key
    store.cycle_key()
    assert store.session_key != old
    store.save()
    assert SessionStore(old).load() == {}
    assert SessionStore(store.session_key)["pending"] == "token"
    assert UserSession.objects.count() == 1


def test_cycle_key_of_a_vanished_row_brings_nothing_back() -> None:
    """When the old row is gone (the session was ended while the request ran), cycling starts an empty
    session: a sign-in it held is not revived under a new key."""
    store = stored({"_auth_user_id": "7", "pending": "token"})
    UserSession.objects.all().delete()
    store.cycle_key()
    # Not even the row cycling writes (the response may never save: a server error) holds it.
    assert SessionStore(store.session_key).load() == {}
    store.save()
    assert SessionStore(store.session_key).load() == {}


def test_cycle_key_of_a_session_never_saved_keeps_its_data() -> None:
    """A session that had no row yet (its first request) keeps what it holds."""
    store = SessionStore()
    store["pending"] = "token"
    store.cycle_key()
    store.save()
    assert SessionStore(store.session_key)["pending"] == "token"


def test_saving_the_same_data_twice_writes_once() -> None:
    """A save inside the sign-in's transaction makes the response's save a no-op."""
    store = stored({"a": 1})
    store["b"] = 2
    store.save()
    with CaptureQueriesContext(connection) as queries:
        store.save()
    assert len(queries) == 0
    store["c"] = 3
    with CaptureQueriesContext(connection) as queries:
        store.save()
    assert len(queries) == 1
    assert SessionStore(store.session_key)["c"] == 3


def test_update_of_a_deleted_session_raises() -> None:
    """A session ended meanwhile is not silently re-created by a late save."""
    store = stored({"a": 1})
    UserSession.objects.all().delete()
    store["a"] = 2
    with pytest.raises(UpdateError):
        store.save()
    assert UserSession.objects.count() == 0


def test_create_with_a_taken_key_raises() -> None:
    """must_create refuses a key that exists, without spoiling an enclosing transaction."""
    store = stored({"a": 1})
    other = SessionStore(store.session_key)
    other._session_cache = {"b": 2}  # type: ignore[attr-defined]
    with pytest.raises(CreateError):
        other.save(must_create=True)
    assert SessionStore(store.session_key)["a"] == 1


def test_new_keys_are_long_random_and_valid() -> None:
    """Keys are 32 characters Django accepts as a session key, and do not repeat (SES-04)."""
    keys = {new_session_key() for _ in range(2000)}
    assert len(keys) == 2000
    assert all(len(key) == 32 and set(key) <= set(VALID_KEY_CHARS) for key in keys)
    # 160 bits in [a-z2-7]: every character of the alphabet turns up.
    assert set("".join(keys)) == set(string.ascii_lowercase + "234567")


def test_create_retries_a_taken_key_without_asking_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a session is one INSERT; a key that is already taken is replaced by another."""
    taken = stored({"a": 1}).session_key
    with CaptureQueriesContext(connection) as queries:
        SessionStore().create()
    # (The savepoint around it is the test's own transaction at work.)
    verbs = [q["sql"].split()[0] for q in queries.captured_queries]
    assert [verb for verb in verbs if verb not in {"SAVEPOINT", "RELEASE"}] == ["INSERT"]

    offered = iter([taken, "fresh" + "a" * 27])
    monkeypatch.setattr("twostep.usersessions.backend.new_session_key", lambda: next(offered))
    store = SessionStore()
    store["b"] = 2
    store.create()
    assert store.session_key == "fresh" + "a" * 27
    assert SessionStore(taken)["a"] == 1


def test_expiry_follows_twostep_clock(frozen_clock: clock.FrozenClock) -> None:
    """A session's expiry is reckoned from twostep's clock, like every other time limit."""
    frozen_clock.advance(10 * 86400)
    store = stored({"a": 1})
    row = UserSession.objects.get(session_key=stored_key(store.session_key))
    assert row.expire_date == clock.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert SessionStore(store.session_key)["a"] == 1
    frozen_clock.advance(settings.SESSION_COOKIE_AGE + 1)
    assert SessionStore(store.session_key).load() == {}


def test_upgrade_renames_existing_rows_without_signing_anyone_out() -> None:
    """Rows written under their plain keys (before digests) still load after the data migration."""
    from importlib import import_module

    from django.apps import apps

    store = stored({"kept": True})
    row_name = stored_key(store.session_key)
    UserSession.objects.filter(session_key=row_name).update(session_key=store.session_key)  # as before the upgrade
    assert SessionStore(store.session_key).load() == {}
    import_module("twostep.usersessions.migrations.0002_rows_named_by_key_digest").rename_rows(apps, None)
    assert list(UserSession.objects.values_list("session_key", flat=True)) == [row_name]
    assert SessionStore(store.session_key)["kept"] is True
