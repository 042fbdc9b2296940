"""Rows read by hand-written SQL are the same Python values the ORM gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import Origin, record
from twostep.core import rawsql
from twostep.mfa import pending as store
from twostep.mfa.models import Authenticator, PendingLogin

pytestmark = pytest.mark.django_db

MOMENT = datetime(2026, 11, 29, 12, 30, 15, 123456, tzinfo=UTC)


def fields_of(instance: object, model: type) -> dict[str, object]:
    return {f.attname: getattr(instance, f.attname) for f in model._meta.concrete_fields}


def test_pending_sign_in_and_account_match_the_orm(user: User) -> None:
    """Datetimes come back aware in UTC, booleans as booleans, to the microsecond."""
    User.objects.filter(pk=user.pk).update(second_step_blocked_until=MOMENT, must_change_password=True)
    pending = PendingLogin.objects.create(
        token_hash="a" * 64, user=user, method="totp", created_at=MOMENT, expires_at=MOMENT + timedelta(minutes=5)
    )
    found = store.find("a" * 64)
    assert found is not None
    assert fields_of(found, PendingLogin) == fields_of(PendingLogin.objects.get(pk=pending.pk), PendingLogin)
    assert fields_of(found.user, User) == fields_of(User.objects.get(pk=user.pk), User)
    assert found.user.second_step_blocked_until == MOMENT and found.user.must_change_password is True
    assert store.find("b" * 64) is None


def test_factor_and_spending_match_the_orm(user: User) -> None:
    factor = Authenticator.objects.create(user=user, method="totp", secret="x", confirmed_at=MOMENT, last_step=7)
    read = store.confirmed_factor(user.pk, "totp")
    assert read is not None and fields_of(read, Authenticator) == fields_of(factor, Authenticator)
    assert store.confirmed_factor(user.pk, "sms") is None
    pending = PendingLogin.objects.create(
        token_hash="c" * 64, user=user, method="totp", created_at=MOMENT, expires_at=MOMENT
    )
    assert store.spend(pending.pk, MOMENT) is True
    assert store.spend(pending.pk, MOMENT) is False
    assert PendingLogin.objects.get(pk=pending.pk).completed_at == MOMENT


def test_auth_log_insert_matches_the_orm(user: User) -> None:
    """``record`` writes every column, JSON detail included, and returns the stored event."""
    event = record(
        "login", "success", origin=Origin("192.0.2.7", "agent"), user=user, method="totp", detail={"n": [1, "two"]}
    )
    stored = AuthEvent.objects.get(pk=event.pk)
    assert fields_of(stored, AuthEvent) == fields_of(event, AuthEvent)
    assert stored.detail == {"n": [1, "two"]} and stored.ip == "192.0.2.7" and stored.username == user.username


def test_prep_gives_what_the_database_stores(user: User) -> None:
    """A datetime written by hand is found by the ORM's own equality filter on that column."""
    pending = PendingLogin.objects.create(
        token_hash="d" * 64, user=user, method="totp", created_at=MOMENT, expires_at=MOMENT
    )
    later = MOMENT + timedelta(seconds=1, microseconds=1)
    table, column = rawsql.table(PendingLogin), rawsql.column(PendingLogin, "completed_at")
    rawsql.execute(
        f"UPDATE {table} SET {column} = %s WHERE id = %s",  # noqa: S608
        [rawsql.prep(PendingLogin, "completed_at", later), pending.pk],
    )
    assert PendingLogin.objects.filter(completed_at=later).get().pk == pending.pk
    assert rawsql.column(PendingLogin, "user") == rawsql.column(PendingLogin, "user_id")
