"""Administration: users, their addresses and phones, 2FA resets, tokens, settings and the auth log.

Every operation needs an administrator's token with the admin scope.  Each
one calls the same service function as the console and the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, QueryDict
from ninja import P, PathEx, Query, Router, Schema, Status
from pydantic import ConfigDict, Field, StringConstraints

from twostep.accounts import services
from twostep.accounts.models import User
from twostep.accounts.validators import USERNAME_RE
from twostep.api import tokens
from twostep.api.auth import (
    ADMIN,
    current_token,
    current_user,
)
from twostep.api.errors import ApiError, responses
from twostep.api.presenters import created_user, event, token_out, user_detail, user_summary
from twostep.api.schemas import (
    MAX_ID,
    NO_CONTROL,
    TOKEN_ID_PATTERN,
    USERNAME_PATTERN,
    EmailAddedOut,
    EmailIn,
    EventPageOut,
    Instant,
    PhoneAddedOut,
    PhoneIn,
    QueryInteger,
    ResetOut,
    RevokedOut,
    SetPasswordIn,
    SettingsIn,
    SettingsOut,
    TokenOut,
    UserCreatedOut,
    UserCreateIn,
    UserDetailOut,
    UserPageOut,
    UserUpdateIn,
)
from twostep.audit.models import AuthEvent
from twostep.audit.services import Origin, Outcome, record
from twostep.core.keyring import ENCRYPTED_SETTINGS
from twostep.core.runtime import (
    DEFINITIONS,
    METHOD_REQUIREMENTS,
    SettingError,
    check_settable,
    get_settings,
    lock_settings,
    set_setting,
)
from twostep.mfa import email_check
from twostep.mfa import services as mfa_services
from twostep.mfa.policy import SWITCH_KEYS, forced_off_by_config, methods_warning

router = Router(tags=["admin"])


UsernamePath = PathEx[str, P(pattern=USERNAME_PATTERN, description="The user's username.")]
IdPath = PathEx[int, P(ge=1, le=MAX_ID)]
TokenIdPath = PathEx[str, P(pattern=TOKEN_ID_PATTERN, description="A token's id, as listed.")]


def _user(username: str) -> User:
    """Raises ApiError(not_found)."""
    name = username.lower()
    user = User.objects.filter(username=name).first() if USERNAME_RE.fullmatch(name) else None
    if user is None:
        raise ApiError("not_found", "No such user.")
    return user


def _known_query(request: HttpRequest, model: type[Schema]) -> None:
    """Raises ApiError(invalid_request) for a query parameter ``model`` does not declare (a typo
    such as ``?usr=alice`` must not silently return everything)."""
    # The query as sent: request.GET no longer holds the parameters sent empty
    # (transport.drop_empty_query_parameters), and an unknown name is a mistake even then.
    sent = QueryDict(request.META.get("QUERY_STRING", ""))
    unknown = sorted(set(sent) - set(model.model_fields))
    if unknown:
        fields = [{"field": name, "message": "Unknown query parameter."} for name in unknown[:20]]
        raise ApiError("invalid_request", f"Unknown query parameter(s): {', '.join(unknown[:5])}.", fields=fields)


@contextmanager
def _sparing(author: User) -> Iterator[None]:
    """``email_check.sparing`` for the API: a change that would strand its author answers 409 ``conflict``."""
    try:
        with email_check.sparing(author):
            yield
    except SettingError as exc:
        raise ApiError("conflict", str(exc)) from None


def _context(request: HttpRequest) -> dict[str, Any]:
    return {"origin": Origin.of(request), "actor": current_user(request)}


class Page(Schema):
    model_config = ConfigDict(extra="forbid")

    page: QueryInteger = Field(default=1, ge=1, le=100_000, description="From 1. A page past the end has no items.")
    page_size: QueryInteger = Field(default=50, ge=1, le=200)


def _page_of(queryset: QuerySet[Any], filters: Page) -> tuple[list[Any], dict[str, Any]]:
    """The items of the page ``filters`` asks for, and the page's ``total``, ``page`` and ``page_size``.

    A page past the end is empty and keeps the number asked for (Django's
    ``Paginator.get_page`` would answer the last page again, and a client
    reading pages until one comes back empty would never stop).
    """
    total = queryset.count()
    start = (filters.page - 1) * filters.page_size
    items = list(queryset[start : start + filters.page_size]) if start < total else []
    return items, {"total": total, "page": filters.page, "page_size": filters.page_size}


class UserFilter(Page):
    q: Annotated[str, StringConstraints(max_length=64, pattern=NO_CONTROL)] = Field(
        default="", description="Part of a username or display name."
    )


class EventFilter(Page):
    user: Annotated[str, StringConstraints(max_length=150, pattern=NO_CONTROL)] | None = Field(
        default=None,
        description="Events about this username (the account's, or as typed at sign-in when it names an "
        'account; a name that is no account is logged as a label such as "(unknown name #1a2b3c4d)").',
    )
    kind: Annotated[str, StringConstraints(max_length=50, pattern=NO_CONTROL)] | None = Field(
        default=None, description='e.g. "login.password", "login.second_step".'
    )
    outcome: Literal["success", "failure", "info"] | None = None
    ip: IPv4Address | IPv6Address | None = Field(default=None, description="Client IP address (IPv4 or IPv6).")
    since: Instant | None = Field(default=None, description="From this instant (inclusive), with a time zone.")
    until: Instant | None = Field(default=None, description="Before this instant (exclusive), with a time zone.")


# --- users --------------------------------------------------------------------


@router.get("/users", auth=ADMIN, response={200: UserPageOut, **responses(400, 401, 403)}, summary="List users")
def list_users(request: HttpRequest, filters: Query[UserFilter]) -> dict[str, Any]:
    """Users by username, paginated, optionally filtered by `q`."""
    _known_query(request, UserFilter)
    users = User.objects.annotate(
        factor_count=Count("authenticators", filter=Q(authenticators__confirmed_at__isnull=False))
    ).order_by("username")
    if filters.q:
        users = users.filter(Q(username__icontains=filters.q) | Q(display_name__icontains=filters.q))
    items, page = _page_of(users, filters)
    return {"items": [user_summary(u, has_factor=bool(u.factor_count)) for u in items], **page}


@router.post(
    "/users",
    auth=ADMIN,
    response={201: UserCreatedOut, **responses(401, 403, 409, 422)},
    summary="Create a user",
)
def create_user(request: HttpRequest, payload: UserCreateIn) -> Status[dict[str, Any]]:
    """A new user with addresses and phone numbers (the first of each is primary).

    By default a password chosen here must be changed at the first sign-in,
    as in the console.  Each address and number in the answer has `also_on`:
    the other accounts that have it too (created all the same).
    """
    user = services.create_user(
        payload.username,
        password=payload.password,
        display_name=payload.display_name,
        role=payload.role,
        emails=payload.emails,
        phones=payload.phones,
        must_change_password=payload.must_change_password and payload.password is not None,
        **_context(request),
    )
    return Status(201, created_user(user))


@router.get(
    "/users/{username}",
    auth=ADMIN,
    response={200: UserDetailOut, **responses(400, 401, 403, 404)},
    summary="Show a user",
)
def get_user(request: HttpRequest, username: UsernamePath) -> dict[str, Any]:
    return user_detail(_user(username))


@router.patch(
    "/users/{username}",
    auth=ADMIN,
    response={200: UserDetailOut, **responses(401, 403, 404, 422)},
    summary="Change a user's name, role or active flag",
)
def update_user(request: HttpRequest, payload: UserUpdateIn, username: UsernamePath) -> dict[str, Any]:
    """Deactivating a user ends their sessions and tokens.  The last active administrator stays one."""
    user = services.update_user(
        _user(username),
        display_name=payload.display_name,
        role=payload.role,
        is_active=payload.is_active,
        **_context(request),
    )
    return user_detail(user)


@router.delete(
    "/users/{username}", auth=ADMIN, response={204: None, **responses(400, 401, 403, 404, 422)}, summary="Delete a user"
)
def delete_user(request: HttpRequest, username: UsernamePath) -> Status[None]:
    """Delete the user with their sessions, tokens, addresses and factors."""
    services.delete_user(_user(username), **_context(request))
    return Status(204, None)


@router.post(
    "/users/{username}/password",
    auth=ADMIN,
    response={204: None, **responses(401, 403, 404, 422)},
    summary="Set a user's password",
)
def set_password(request: HttpRequest, payload: SetPasswordIn, username: UsernamePath) -> Status[None]:
    """Set a new password; the user's sessions and tokens end."""
    services.set_password(
        _user(username), payload.password, must_change=payload.must_change_password, **_context(request)
    )
    return Status(204, None)


@router.post(
    "/users/{username}/reset-2fa",
    auth=ADMIN,
    response={200: ResetOut, **responses(400, 401, 403, 404)},
    summary="Reset a user's second factors (lost device)",
)
def reset_two_factor(request: HttpRequest, username: UsernamePath) -> dict[str, Any]:
    """Remove every factor, end the user's sessions and tokens and lift any lock."""
    removed = mfa_services.reset_two_factor(_user(username), **_context(request))
    return {"removed": removed}


@router.post(
    "/users/{username}/unlock",
    auth=ADMIN,
    response={204: None, **responses(400, 401, 403, 404)},
    summary="Unlock a user's second step",
)
def unlock(request: HttpRequest, username: UsernamePath) -> Status[None]:
    """Lift a lock after too many wrong codes and clear the failure count.

    The user's sign-ins still waiting at the second step (login tokens) end:
    they sign in again, with the password."""
    mfa_services.unlock_second_step(_user(username), **_context(request))
    return Status(204, None)


# --- addresses and phone numbers ------------------------------------------------


@router.post(
    "/users/{username}/emails",
    auth=ADMIN,
    response={201: EmailAddedOut, **responses(401, 403, 404, 409, 422)},
    summary="Add an email address",
)
def add_email(request: HttpRequest, payload: EmailIn, username: UsernamePath) -> Status[dict[str, Any]]:
    """Added even when another account has it too; `also_on` names those accounts."""
    created = services.add_email(_user(username), payload.email, primary=payload.primary, **_context(request))
    shared = services.also_on(created)
    return Status(201, {"id": created.pk, "email": created.email, "primary": created.is_primary, "also_on": shared})


@router.delete(
    "/users/{username}/emails/{email_id}",
    auth=ADMIN,
    response={204: None, **responses(400, 401, 403, 404)},
    summary="Remove an email address",
)
def remove_email(request: HttpRequest, username: UsernamePath, email_id: IdPath) -> Status[None]:
    """If it was primary, the oldest remaining address becomes primary."""
    services.remove_email(_user(username), email_id, **_context(request))
    return Status(204, None)


@router.post(
    "/users/{username}/emails/{email_id}/primary",
    auth=ADMIN,
    response={204: None, **responses(400, 401, 403, 404)},
    summary="Make an email address primary",
)
def primary_email(request: HttpRequest, username: UsernamePath, email_id: IdPath) -> Status[None]:
    services.make_primary_email(_user(username), email_id, **_context(request))
    return Status(204, None)


@router.post(
    "/users/{username}/phones",
    auth=ADMIN,
    response={201: PhoneAddedOut, **responses(401, 403, 404, 409, 422)},
    summary="Add a phone number",
)
def add_phone(request: HttpRequest, payload: PhoneIn, username: UsernamePath) -> Status[dict[str, Any]]:
    """The number must be in international form (+15551234567); it is stored in E.164.

    Added even when another account has it too; `also_on` names those accounts."""
    created = services.add_phone(_user(username), payload.phone, primary=payload.primary, **_context(request))
    shared = services.also_on(created)
    return Status(201, {"id": created.pk, "number": created.number, "primary": created.is_primary, "also_on": shared})


@router.delete(
    "/users/{username}/phones/{phone_id}",
    auth=ADMIN,
    response={204: None, **responses(400, 401, 403, 404)},
    summary="Remove a phone number",
)
def remove_phone(request: HttpRequest, username: UsernamePath, phone_id: IdPath) -> Status[None]:
    services.remove_phone(_user(username), phone_id, **_context(request))
    return Status(204, None)


@router.post(
    "/users/{username}/phones/{phone_id}/primary",
    auth=ADMIN,
    response={204: None, **responses(400, 401, 403, 404)},
    summary="Make a phone number primary",
)
def primary_phone(request: HttpRequest, username: UsernamePath, phone_id: IdPath) -> Status[None]:
    services.make_primary_phone(_user(username), phone_id, **_context(request))
    return Status(204, None)


# --- tokens ------------------------------------------------------------------------


@router.get(
    "/users/{username}/tokens",
    auth=ADMIN,
    response={200: list[TokenOut], **responses(400, 401, 403, 404)},
    summary="List a user's access tokens",
)
def list_user_tokens(request: HttpRequest, username: UsernamePath) -> list[dict[str, Any]]:
    caller = current_token(request)
    return [token_out(t, current=caller) for t in tokens.live_tokens(_user(username))]


@router.delete(
    "/users/{username}/tokens",
    auth=ADMIN,
    response={200: RevokedOut, **responses(400, 401, 403, 404)},
    summary="Revoke every token of a user",
)
def revoke_user_tokens(request: HttpRequest, username: UsernamePath) -> dict[str, Any]:
    return {"revoked": tokens.revoke_all(_user(username), **_context(request))}


@router.delete(
    "/users/{username}/tokens/{token_id}",
    auth=ADMIN,
    response={204: None, **responses(400, 401, 403, 404)},
    summary="Revoke one token of a user",
)
def revoke_user_token(request: HttpRequest, username: UsernamePath, token_id: TokenIdPath) -> Status[None]:
    target = tokens.find_live(_user(username), token_id)
    if target is None:
        raise ApiError("not_found", "No such token.")
    tokens.revoke(target, **_context(request))
    return Status(204, None)


# --- settings ----------------------------------------------------------------------


def _settings_out() -> dict[str, Any]:
    keys = sorted(DEFINITIONS)
    values = get_settings(*keys)
    items = []
    for key in keys:
        secret = key in ENCRYPTED_SETTINGS
        definition = DEFINITIONS[key]
        items.append(
            {
                "key": key,
                "value": None if secret else values[key],
                "default": None if secret else definition.default,
                "secret": secret,
                "help": definition.help,
            }
        )
    warning = methods_warning(list(values["two_factor.methods"]))
    return {"settings": items, "forced_off_by_config": forced_off_by_config(), "warnings": [warning] if warning else []}


#: Said when a setting needs outgoing mail that is not set up: the services' message
#: names the console page, but the API sets the mail server too.
OUTGOING_MAIL_BY_API = (
    "Through the API: set email.host (and email.port, email.security, email.username) with "
    "PATCH /api/v1/admin/settings, in an earlier request or before this key in the same values; "
    "only the SMTP password is set elsewhere (`twostep email set-password` or the console's Outgoing mail page)."
)


def _needs_outgoing_mail(problem: str) -> bool:
    """True when ``problem`` is the refusal of something that needs an SMTP server, none being set."""
    email_problem = METHOD_REQUIREMENTS.get("email")
    reasons = {email_problem() if email_problem else None, email_check.unavailable_reason()}
    return problem in reasons - {None}


def _json_example(key: str, value: Any) -> str | None:
    """For a value sent as text where the setting holds another type (``"totp,email"``, as on the
    command line, for a list): the JSON to send instead, or None."""
    definition = DEFINITIONS.get(key)
    if definition is None or not isinstance(value, str) or isinstance(definition.default, str):
        return None
    try:
        # What the command line makes of the text, even if it is refused next:
        # it shows how to write what was meant.
        example = definition.parse(value)
    except ValueError:  # SettingError is one
        example = definition.default
    return json.dumps(example)


def _setting_refused(key: str, exc: SettingError, value: Any = None) -> ApiError:
    """422 ``invalid_value`` for ``key``: the message begins with the key, and ``fields`` names it
    (``values.<key>``), as for a value the schema refuses."""
    problem = str(exc)
    example = _json_example(key, value)
    if example is not None:
        problem += f", e.g. {example}"
    if _needs_outgoing_mail(str(exc)):
        problem += " " + OUTGOING_MAIL_BY_API
    return ApiError("invalid_value", f"{key}: {problem}", fields=[{"field": f"values.{key}", "message": problem}])


@router.get("/settings", auth=ADMIN, response={200: SettingsOut, **responses(401, 403)}, summary="Runtime settings")
def get_runtime_settings(request: HttpRequest) -> dict[str, Any]:
    """Every runtime setting (2FA switch, allowed methods, ...) with its value, default and help.

    Secret settings are listed without their values."""
    return _settings_out()


@router.patch(
    "/settings",
    auth=ADMIN,
    response={200: SettingsOut, **responses(401, 403, 409, 422)},
    summary="Change runtime settings",
)
def update_runtime_settings(request: HttpRequest, payload: SettingsIn) -> dict[str, Any]:
    """Set several settings at once, in the order given; all or none are stored.

    A value that is refused answers 422 `invalid_value` naming its key (the
    message starts with it; `fields` holds `values.<key>`).  Lists are JSON
    lists (`["totp", "email"]`), not the comma-separated text of `twostep
    settings set`.  The mail server (`email.host`, `email.port`,
    `email.security`, `email.username`) is set here too, which email codes and
    the email check need first; only the SMTP password is set elsewhere.

    A change of `two_factor.enabled` or `two_factor.methods` that would stop
    asking some users for their second factor answers 409
    `confirmation_required`, with that number of users in `affected`, until
    repeated with `confirm_affected` set to it, as in the console.  A change that would require
    the token's own user to enrol behind the email check while they have no
    second factor and no email address answers 409 `conflict`.
    """
    for key in sorted(payload.values):
        try:
            check_settable(key)  # unknown, or naming where the key is set instead
        except SettingError as exc:
            raise _setting_refused(key, exc) from None
    context = _context(request)
    with transaction.atomic(), _sparing(current_user(request)):
        before = get_settings(*SWITCH_KEYS)
        # Locked in one order whatever the payload's, or two changes deadlock.
        lock_settings(payload.values)
        stored = {}
        # In the order given: a later value's check sees the earlier ones (email.host before email codes).
        for key, value in payload.values.items():
            try:
                stored[key] = set_setting(key, value)
            except SettingError as exc:
                raise _setting_refused(key, exc, value) from None
        after = get_settings(*SWITCH_KEYS)
        if after != before:
            affected = mfa_services.affected_under(after)
            if affected and payload.confirm_affected != affected:
                transaction.set_rollback(True)
                changed = " and ".join(key for key in SWITCH_KEYS if after[key] != before[key])
                raise ApiError(
                    "confirmation_required",
                    f"{changed}: {affected} user(s) would no longer be asked for their second factor. "
                    f"Repeat the request with confirm_affected={affected} to go ahead.",
                    affected=affected,
                )
    for key, value in stored.items():
        record("settings.changed", Outcome.INFO, detail={"key": key, "value": value}, **context)
    return _settings_out()


# --- the auth log ----------------------------------------------------------------


@router.get(
    "/audit", auth=ADMIN, response={200: EventPageOut, **responses(400, 401, 403)}, summary="Query the auth log"
)
def audit_log(request: HttpRequest, filters: Query[EventFilter]) -> dict[str, Any]:
    """Newest first.  Codes, passwords and secrets are never in it."""
    _known_query(request, EventFilter)
    events = AuthEvent.objects.all().order_by("-created_at", "-id")
    if filters.user:
        name = filters.user.strip().lower()
        events = events.filter(Q(username__iexact=filters.user.strip()) | Q(user__username=name))
    if filters.kind:
        events = events.filter(kind=filters.kind)
    if filters.outcome:
        events = events.filter(outcome=filters.outcome)
    if filters.ip is not None:
        events = events.filter(ip=str(filters.ip))
    if filters.since:
        events = events.filter(created_at__gte=filters.since)
    if filters.until:
        events = events.filter(created_at__lt=filters.until)
    items, page = _page_of(events, filters)
    actor_ids = {item.actor_id for item in items if item.actor_id}
    usernames = dict(User.objects.filter(pk__in=actor_ids).values_list("pk", "username"))
    return {"items": [event(item, usernames) for item in items], **page}
