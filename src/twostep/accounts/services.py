"""Administration of users, their addresses and phone numbers.

The console views, the JSON API and the CLI all call these functions; none of
them repeats a rule.  Invalid input raises Django's ``ValidationError`` with
a message fit to show to the person who typed it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from twostep.accounts.locking import lock_account
from twostep.accounts.models import EmailAddress, PhoneNumber, Role, User
from twostep.accounts.validators import normalize_email, normalize_username, textable_phone
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock, rawsql
from twostep.usersessions.services import end_sessions


class UserNotFoundError(LookupError):
    """No user has that username."""


def find_user(username: str) -> User:
    """Raises UserNotFoundError."""
    try:
        return User.objects.get(username=username.strip().lower())
    except User.DoesNotExist:
        raise UserNotFoundError(f"no user named {username!r}") from None


def check_password_rules(password: str, user: User | None = None) -> None:
    """Raises ValidationError listing every rule ``password`` breaks."""
    password_validation.validate_password(password, user)


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}; choose user or admin.", code="invalid_role")
    return role


@transaction.atomic
def create_user(
    username: str,
    *,
    password: str | None,
    origin: Origin,
    display_name: str = "",
    role: str = Role.USER,
    emails: Iterable[str] = (),
    phones: Iterable[str] = (),
    must_change_password: bool = False,
    actor: User | None = None,
) -> User:
    """Create a user; the first email and phone given become primary.

    With ``password=None`` the account has no usable password until one is set.

    Raises:
        ValidationError: invalid username, role, password, email or phone, or
            the username is taken (code ``username_taken``).
    """
    name = normalize_username(username)
    _check_role(role)
    # As add_email: one address once, whatever its case.
    clean_emails = _unique((normalize_email(email) for email in emails), key=str.casefold)
    clean_phones = _unique(textable_phone(phone) for phone in phones)
    if User.objects.filter(username=name).exists():
        raise ValidationError(f"The username {name!r} is taken.", code="username_taken")
    user = User(username=name, display_name=_check_display_name(display_name), role=role)
    if password is None:
        user.set_unusable_password()
    else:
        check_password_rules(password, user)
        user.set_password(password)
    user.must_change_password = must_change_password
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ValidationError(f"The username {name!r} is taken.", code="username_taken") from None
    for index, email in enumerate(clean_emails):
        EmailAddress.objects.create(user=user, email=email, is_primary=index == 0)
    for index, phone in enumerate(clean_phones):
        PhoneNumber.objects.create(user=user, number=phone, is_primary=index == 0)
    record("user.created", Outcome.INFO, origin=origin, user=user, actor=actor, detail={"role": role})
    return user


def _unique(values: Iterable[str], key: Callable[[str], str] = str) -> list[str]:
    """``values`` in order, each kept once: the first of those with the same ``key``."""
    kept: dict[str, str] = {}
    for value in values:
        kept.setdefault(key(value), value)
    return list(kept.values())


MAX_DISPLAY_NAME = User._meta.get_field("display_name").max_length or 150


def _check_display_name(display_name: str) -> str:
    name = display_name.strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise ValidationError(f"The display name must be at most {MAX_DISPLAY_NAME} characters.")
    if not name.isprintable():
        # Control and direction-changing characters would make the console
        # and the mails show a name other than the one stored.
        raise ValidationError("The display name can have letters, digits, spaces and punctuation only.")
    return name


def _is_last_admin(user: User) -> bool:
    """Whether ``user`` is the only active administrator (call inside a transaction).

    The active administrators' rows stay locked until the transaction ends
    (in one order, so that no two callers deadlock): two administrators
    demoting or deactivating each other at the same moment cannot both see
    the other as still there.  SQLite serialises writers anyway.
    """
    admins = User.objects.select_for_update().filter(role=Role.ADMIN, is_active=True).order_by("pk")
    return list(admins.values_list("pk", flat=True)) == [user.pk]


@transaction.atomic
def update_user(
    user: User,
    *,
    origin: Origin,
    actor: User | None = None,
    display_name: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
) -> User:
    """Change a user's name, role or active flag.  A new role or deactivation ends their sessions.

    A new role is a change of privilege: the user signs in again under it
    (and under the second-step policy for that role), with a new session.

    Raises:
        ValidationError: unknown role, a display name over 150 characters, an
            administrator changing their own role or deactivating their own
            account, or the change would leave no active administrator.
    """
    own = actor is not None and actor.pk == user.pk
    changes: dict[str, object] = {}
    if display_name is not None and display_name.strip() != user.display_name:
        user.display_name = _check_display_name(display_name)
        changes["display_name"] = user.display_name
    if role is not None and role != user.role:
        _check_role(role)
        if _is_last_admin(user):
            raise ValidationError("This is the last active administrator; make someone else an admin first.")
        if own:
            # As for deactivating: one click would end this administrator's
            # own access for good; another administrator can do it knowingly.
            raise ValidationError("You cannot change your own role; another administrator can.")
        user.role = role
        changes["role"] = role
    if is_active is not None and is_active != user.is_active:
        if not is_active and _is_last_admin(user):
            raise ValidationError("This is the last active administrator; it cannot be deactivated.")
        if not is_active and own:
            raise ValidationError("You cannot deactivate your own account; another administrator can.")
        user.is_active = is_active
        changes["is_active"] = is_active
    if not changes:
        return user
    # Only what changed: ``user`` was read earlier in the request, and writing
    # every column back would undo a password change (or sign-in) made since.
    user.save(update_fields=list(changes))
    if user.is_active is False or "role" in changes:
        end_sessions(user)
    record("user.updated", Outcome.INFO, origin=origin, user=user, actor=actor, detail=changes)
    return user


@transaction.atomic
def sign_out(user: User, *, origin: Origin, actor: User | None = None) -> int:
    """End ``user``'s sessions, with their API tokens, trusted browsers and waiting sign-ins; return how many
    sessions ended.

    For an administrator: after a suspected compromise, or once the
    break-glass switch is off again, when sessions opened with the password
    alone must not last until they expire.
    """
    with transaction.atomic():
        # The account's row first, as a code's check takes it: a sign-in being
        # completed now either commits before (and its session ends here) or
        # waits, then finds its pending sign-in ended.
        lock_account(user.pk, no_key=True)
        ended = end_sessions(user)
    record("session.ended_by_admin", Outcome.INFO, origin=origin, user=user, actor=actor, detail={"count": ended})
    return ended


def set_active(user: User, active: bool, *, origin: Origin, actor: User | None = None) -> User:
    """Enable or disable sign-in for ``user``; disabling ends their sessions."""
    return update_user(user, origin=origin, actor=actor, is_active=active)


@transaction.atomic
def set_password(
    user: User,
    password: str,
    *,
    origin: Origin,
    actor: User | None = None,
    must_change: bool = False,
    keep_session_key: str | None = None,
) -> int:
    """Set a new password and end the user's other sessions; return how many ended.

    ``must_change`` makes the user choose their own at the next sign-in (for
    passwords an admin chose).  ``keep_session_key`` spares the session of a
    user who changed their own password.

    Raises:
        ValidationError: the password breaks a password rule.
    """
    check_password_rules(password, user)
    user.set_password(password)
    user.must_change_password = must_change
    user.save(update_fields=["password", "must_change_password"])
    ended = end_sessions(user, except_key=keep_session_key)
    kind = "password.reset_by_admin" if actor is not None and actor.pk != user.pk else "password.changed"
    record(kind, Outcome.INFO, origin=origin, user=user, actor=actor)
    return ended


@transaction.atomic
def delete_user(user: User, *, origin: Origin, actor: User | None = None) -> None:
    """Delete ``user`` with their sessions, addresses and factors.

    Raises:
        ValidationError: ``user`` is the last active administrator, or
            ``actor`` themselves (another administrator can delete them).
    """
    if _is_last_admin(user):
        raise ValidationError("This is the last active administrator; it cannot be deleted.")
    if actor is not None and actor.pk == user.pk:
        raise ValidationError("You cannot delete your own account; another administrator can.")
    # Before its pending sign-ins' rows; after ``_is_last_admin``, which locks
    # the administrators in their own order.
    lock_account(user.pk)
    end_sessions(user)
    record("user.deleted", Outcome.INFO, origin=origin, username=user.username, actor=actor)
    user.delete()


@transaction.atomic
def add_email(
    user: User, email: str, *, origin: Origin, actor: User | None = None, primary: bool = False
) -> EmailAddress:
    """Raises ValidationError for an invalid or duplicate address."""
    # Two requests for one account (a double click on "Add") both found the
    # address missing and the second broke the one-per-account rule: a
    # server error on PostgreSQL.  Holding the account's row, they take turns.
    lock_account(user.pk, no_key=True)
    address = normalize_email(email)
    if user.email_addresses.filter(email__iexact=address).exists():
        raise ValidationError(f"{address} is already on this account.", code="duplicate_email")
    make_primary = primary or not user.email_addresses.exists()
    if make_primary:
        user.email_addresses.filter(is_primary=True).update(is_primary=False)
    created = EmailAddress.objects.create(user=user, email=address, is_primary=make_primary)
    record("email.added", Outcome.INFO, origin=origin, user=user, actor=actor, detail={"email": address})
    return created


def also_on(contact: EmailAddress | PhoneNumber) -> list[str]:
    """The other accounts (usernames, sorted) that have the same address or number as ``contact``.

    Allowed (a shared mailbox, a family phone), but worth a warning when
    added: codes sent there reach whoever reads it, so one account's codes
    can reach another's holder.
    """
    same: QuerySet[EmailAddress] | QuerySet[PhoneNumber]
    if isinstance(contact, EmailAddress):
        same = EmailAddress.objects.filter(email__iexact=contact.email)
    else:
        same = PhoneNumber.objects.filter(number=contact.number)
    return sorted(same.exclude(user_id=contact.user_id).values_list("user__username", flat=True).distinct())


@transaction.atomic
def remove_email(user: User, address_id: int, *, origin: Origin, actor: User | None = None) -> None:
    """Remove one address; if it was primary, the oldest remaining becomes primary.

    Raises:
        ValidationError: the address is not this user's.
    """
    lock_account(user.pk, no_key=True)  # as add_email
    address = _owned(user.email_addresses, address_id, "address")
    address.delete()
    if address.is_primary:
        successor = user.email_addresses.order_by("created_at", "pk").first()
        if successor is not None:
            successor.is_primary = True
            successor.save(update_fields=["is_primary"])
    record("email.removed", Outcome.INFO, origin=origin, user=user, actor=actor, detail={"email": address.email})


@transaction.atomic
def make_primary_email(user: User, address_id: int, *, origin: Origin, actor: User | None = None) -> None:
    """Raises ValidationError: the address is not this user's."""
    lock_account(user.pk, no_key=True)  # as add_email
    address = _owned(user.email_addresses, address_id, "address")
    user.email_addresses.filter(is_primary=True).update(is_primary=False)
    address.is_primary = True
    address.save(update_fields=["is_primary"])


@transaction.atomic
def add_phone(
    user: User, phone: str, *, origin: Origin, actor: User | None = None, primary: bool = False
) -> PhoneNumber:
    """Raises ValidationError for an invalid or duplicate number."""
    lock_account(user.pk, no_key=True)  # as add_email
    number = textable_phone(phone)
    if user.phone_numbers.filter(number=number).exists():
        raise ValidationError(f"{number} is already on this account.", code="duplicate_phone")
    make_primary = primary or not user.phone_numbers.exists()
    if make_primary:
        user.phone_numbers.filter(is_primary=True).update(is_primary=False)
    created = PhoneNumber.objects.create(user=user, number=number, is_primary=make_primary)
    record("phone.added", Outcome.INFO, origin=origin, user=user, actor=actor)
    return created


@transaction.atomic
def remove_phone(user: User, phone_id: int, *, origin: Origin, actor: User | None = None) -> None:
    """Raises ValidationError: the number is not this user's."""
    lock_account(user.pk, no_key=True)  # as add_email
    phone = _owned(user.phone_numbers, phone_id, "phone number")
    phone.delete()
    if phone.is_primary:
        successor = user.phone_numbers.order_by("created_at", "pk").first()
        if successor is not None:
            successor.is_primary = True
            successor.save(update_fields=["is_primary"])
    record("phone.removed", Outcome.INFO, origin=origin, user=user, actor=actor)


@transaction.atomic
def make_primary_phone(user: User, phone_id: int, *, origin: Origin, actor: User | None = None) -> None:
    """Raises ValidationError: the number is not this user's."""
    lock_account(user.pk, no_key=True)  # as add_email
    phone = _owned(user.phone_numbers, phone_id, "phone number")
    user.phone_numbers.filter(is_primary=True).update(is_primary=False)
    phone.is_primary = True
    phone.save(update_fields=["is_primary"])


def _owned(manager, pk: int, noun: str):  # type: ignore[no-untyped-def]
    try:
        return manager.select_for_update().get(pk=pk)
    except (manager.model.DoesNotExist, ValueError, TypeError):
        raise ValidationError(f"That {noun} is not on this account.", code="not_found") from None


def record_last_login(user: User) -> None:
    """Set ``user.last_login`` to now, in the object and in its row."""
    user.last_login = clock.now()
    rawsql.execute(_last_login_statement(), [rawsql.prep(User, "last_login", user.last_login), user.pk])


@functools.cache
def _last_login_statement() -> str:
    c = rawsql.column
    return f"UPDATE {rawsql.table(User)} SET {c(User, 'last_login')} = %s WHERE {c(User, 'id')} = %s"  # noqa: S608
