"""Sign-in through the API: password, second step, tokens, and the same generic errors as the pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from tests.api.conftest import Api, allow_only, enrol_totp, error_code
from tests.authenticator_app import a_wrong_code
from tests.conftest import PASSWORD, headers_and_cookies
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.accounts.signin import GENERIC_FAILURE
from twostep.accounts.views import PENDING_KEY
from twostep.api.models import AccessToken
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.factors import totp
from twostep.mfa import login as second_step
from twostep.mfa.login import GENERIC_FAILURE as CODE_FAILURE
from twostep.mfa.policy import login_authenticators

pytestmark = pytest.mark.django_db


def login(api: Api, username: str, password: str = PASSWORD, **extra: object):  # type: ignore[no-untyped-def]
    return api.post("/auth/login", {"username": username, "password": password, **extra})


def test_password_only_sign_in_returns_a_token(api: Api, user: User) -> None:
    """Without 2FA a correct password answers an access token that then authenticates."""
    response = login(api, user.username)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "signed_in" and body["token_type"] == "Bearer"
    assert body["access_token"].startswith("tsa_") and body["scopes"] == ["read", "security"]
    me = api.get("/me", token=body["access_token"])
    assert me.status_code == 200 and me.json()["username"] == "alice"


def test_second_step_with_totp(api: Api, user: User, two_factor_on: None) -> None:
    """With TOTP enrolled the password step answers a login token; a current code completes sign-in."""
    key = enrol_totp(user)
    first = login(api, user.username)
    assert first.status_code == 200
    step = first.json()
    assert step["status"] == "second_step_required"
    assert "access_token" not in step
    assert step["method"] == "totp" and step["methods"] == ["totp"] and step["prompt"]
    assert not AccessToken.objects.filter(user=user).exists()
    verified = api.post(
        "/auth/login/verify", {"login_token": step["login_token"], "code": totp.totp(key, clock.timestamp())}
    )
    assert verified.status_code == 200, verified.content
    assert api.get("/me", token=verified.json()["access_token"]).status_code == 200


def test_completed_login_token_cannot_sign_in_again(api: Api, user: User, two_factor_on: None) -> None:
    """A login token that completed its sign-in is spent: with another valid code it gets login_expired (RR-08)."""
    key = enrol_totp(user)
    login_token = login(api, user.username).json()["login_token"]
    step = totp.time_step(clock.timestamp())
    first = api.post("/auth/login/verify", {"login_token": login_token, "code": totp.hotp(key, step)})
    assert first.status_code == 200
    again = api.post("/auth/login/verify", {"login_token": login_token, "code": totp.hotp(key, step + 1)})
    assert again.status_code == 401 and error_code(again) == "login_expired"
    assert AccessToken.objects.filter(user=user).count() == 1


def test_a_sign_in_begun_on_the_pages_cannot_be_finished_through_the_api(
    api: Api, client: Client, user: User, two_factor_on: None
) -> None:
    """The token a browser's session holds (readable in the sessions table) with the right code gets
    login_expired from the API, and the browser's own sign-in is left as it was."""
    key = enrol_totp(user)
    assert client.post("/login", {"username": user.username, "password": PASSWORD})["Location"] == "/login/verify"
    page_token = client.session[PENDING_KEY]
    step = totp.time_step(clock.timestamp())
    taken = api.post("/auth/login/verify", {"login_token": page_token, "code": totp.hotp(key, step)})
    assert taken.status_code == 401 and error_code(taken) == "login_expired"
    assert api.post("/auth/login/method", {"login_token": page_token, "method": "totp"}).status_code == 401
    assert not AccessToken.objects.filter(user=user).exists()
    finished = client.post("/login/verify", {"code": totp.hotp(key, step)})
    assert finished.status_code == 302 and finished["Location"] == "/account"
    # And the other way: the API's token in a browser's session does not finish a sign-in there.
    api_token = login(api, user.username).json()["login_token"]
    browser = Client()
    assert browser.post("/login", {"username": user.username, "password": PASSWORD}).status_code == 302
    session = browser.session
    session[PENDING_KEY] = api_token
    session.save()
    assert browser.post("/login/verify", {"code": totp.hotp(key, step + 1)})["Location"].startswith("/login")


def test_a_sign_in_begun_before_holders_were_recorded_finishes_either_way(
    api: Api, user: User, two_factor_on: None
) -> None:
    """During an upgrade, a sign-in an older instance began (no holder) is not lost: the API finishes it."""
    key = enrol_totp(user)
    _, token = second_step.start(user, login_authenticators(user.pk)[0], CLI)
    done = api.post("/auth/login/verify", {"login_token": token, "code": totp.totp(key, clock.timestamp())})
    assert done.status_code == 200, done.content


def test_password_failures_are_indistinguishable(api: Api, user: User, make_user) -> None:  # type: ignore[no-untyped-def]
    """Unknown user, wrong password and disabled account get the same 401 body; the log tells them apart."""
    disabled = make_user("dora")
    services.set_active(disabled, False, origin=CLI)
    answers = [
        login(api, "nobody-here"),
        login(api, user.username, "wrong password!"),
        login(api, "dora"),
    ]
    assert {r.status_code for r in answers} == {401}
    assert {r.content for r in answers} == {answers[0].content}
    assert error_code(answers[0]) == "invalid_credentials"
    assert answers[0].json()["error"]["message"] == GENERIC_FAILURE
    reasons = set(AuthEvent.objects.filter(kind="login.password", outcome="failure").values_list("reason", flat=True))
    assert reasons == {"unknown_user", "credentials", "inactive_user"}


def test_wrong_code_and_replay_are_refused_alike(api: Api, user: User, two_factor_on: None) -> None:
    """A wrong code and a replayed code both get 401 second_step_failed with the generic message."""
    key = enrol_totp(user)
    code = totp.totp(key, clock.timestamp())
    first = login(api, user.username).json()["login_token"]
    assert api.post("/auth/login/verify", {"login_token": first, "code": code}).status_code == 200
    second = login(api, user.username).json()["login_token"]
    replay = api.post("/auth/login/verify", {"login_token": second, "code": code})
    wrong_code = str((int(code) + 1) % 1_000_000).zfill(6)
    wrong = api.post("/auth/login/verify", {"login_token": second, "code": wrong_code})
    for response in (replay, wrong):
        assert response.status_code == 401
        assert error_code(response) == "second_step_failed"
        assert response.json()["error"]["message"] == CODE_FAILURE
    assert replay.content == wrong.content
    reasons = list(
        AuthEvent.objects.filter(kind="login.second_step", outcome="failure").values_list("reason", flat=True)
    )
    assert "reused_code" in reasons and "wrong_code" in reasons


def test_malformed_code_is_refused_but_not_counted(api: Api, user: User, two_factor_on: None) -> None:
    """A malformed code gets the wrong code's answer, but it can never be right: it costs no try (as on the pages)."""
    key = enrol_totp(user)
    login_token = login(api, user.username).json()["login_token"]
    for malformed in ("12 345", "", " 123456"):
        response = api.post("/auth/login/verify", {"login_token": login_token, "code": malformed})
        assert response.status_code == 401 and error_code(response) == "second_step_failed"
    user.refresh_from_db()
    assert user.second_step_failures == 0
    # Nor does it spend the login token's tries: the right code still signs in.
    right = api.post("/auth/login/verify", {"login_token": login_token, "code": totp.totp(key, clock.timestamp())})
    assert right.status_code == 200


def test_login_token_dies_after_too_many_wrong_codes(api: Api, user: User, two_factor_on: None) -> None:
    """After the allowed wrong codes the login token is dead: even the right code gets login_expired (BF-15)."""
    key = enrol_totp(user)
    login_token = login(api, user.username).json()["login_token"]
    answers = [
        api.post("/auth/login/verify", {"login_token": login_token, "code": a_wrong_code(key)}) for _ in range(5)
    ]
    assert [error_code(r) for r in answers[:4]] == ["second_step_failed"] * 4
    assert error_code(answers[4]) == "login_expired"
    right = api.post("/auth/login/verify", {"login_token": login_token, "code": totp.totp(key, clock.timestamp())})
    assert right.status_code == 401 and error_code(right) == "login_expired"


def test_unknown_login_token_is_expired(api: Api, db: None) -> None:
    """A made-up login token gets 401 login_expired."""
    response = api.post("/auth/login/verify", {"login_token": "made-up", "code": "123456"})
    assert response.status_code == 401 and error_code(response) == "login_expired"


def test_login_token_expires(api: Api, user: User, two_factor_on: None, frozen_clock: clock.FrozenClock) -> None:
    """A login token older than ten minutes no longer completes a sign-in."""
    key = enrol_totp(user)
    login_token = login(api, user.username).json()["login_token"]
    frozen_clock.advance(601)
    response = api.post("/auth/login/verify", {"login_token": login_token, "code": totp.totp(key, clock.timestamp())})
    assert response.status_code == 401 and error_code(response) == "login_expired"


def test_locked_account_gets_the_generic_failure(api: Api, user: User, two_factor_on: None) -> None:
    """A locked second step answers the same second_step_failed, even for the right code."""
    key = enrol_totp(user)
    User.objects.filter(pk=user.pk).update(second_step_locked_at=clock.now())
    login_token = login(api, user.username).json()["login_token"]
    response = api.post("/auth/login/verify", {"login_token": login_token, "code": totp.totp(key, clock.timestamp())})
    assert response.status_code == 401 and error_code(response) == "second_step_failed"
    assert response.json()["error"]["message"] == CODE_FAILURE


def test_held_back_account_is_refused_silently_as_documented(
    api: Api, user: User, two_factor_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """After wrong codes a right one gets 401 second_step_failed too, with no Retry-After (never 429), and
    the guide and the operation's description say exactly that, not "429 with Retry-After"."""
    key = enrol_totp(user)
    login_token = login(api, user.username).json()["login_token"]
    for _ in range(4):
        assert (
            api.post("/auth/login/verify", {"login_token": login_token, "code": a_wrong_code(key)}).status_code == 401
        )
    login_token = login(api, user.username).json()["login_token"]
    assert api.post("/auth/login/verify", {"login_token": login_token, "code": a_wrong_code(key)}).status_code == 401
    assert User.objects.get(pk=user.pk).second_step_blocked_until is not None  # held back now
    right = api.post("/auth/login/verify", {"login_token": login_token, "code": totp.totp(key, clock.timestamp())})
    assert right.status_code == 401 and error_code(right) == "second_step_failed"
    assert "Retry-After" not in right and right.json()["error"]["message"] == CODE_FAILURE
    frozen_clock.advance(60)
    later = api.post("/auth/login/verify", {"login_token": login_token, "code": totp.totp(key, clock.timestamp())})
    assert later.status_code == 200, later.content
    guide = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    assert "Too many failures: `429 rate_limited`" not in guide
    assert "**even for a right\n  code**, with no `Retry-After`" in guide
    verify = api.get("/openapi.json").json()["paths"]["/api/v1/auth/login/verify"]["post"]["description"]
    assert "There is no 429 here" in verify and "a right one too" in verify and "no `Retry-After`" in verify


def test_method_withdrawn_mid_sign_in(api: Api, user: User, two_factor_on: None) -> None:
    """If the admin disallows the method between the steps, verify answers 409 method_unavailable."""

    enrol_totp(user)
    login_token = login(api, user.username).json()["login_token"]
    allow_only("email")
    response = api.post("/auth/login/verify", {"login_token": login_token, "code": "123456"})
    assert response.status_code == 409 and error_code(response) == "method_unavailable"
    assert response.json()["error"]["methods"] == []  # none left: a recovery code, then


def test_must_change_password_gets_no_token(api: Api, make_user) -> None:  # type: ignore[no-untyped-def]
    """A user whose password an admin chose is sent to the web page instead of getting a token."""
    make_user("newbie", must_change_password=True)
    response = login(api, "newbie")
    assert response.status_code == 403 and error_code(response) == "password_change_required"
    assert not AccessToken.objects.exists()


def test_logout_revokes_the_token(api: Api, user: User) -> None:
    """After sign-out the token no longer authenticates."""
    token = login(api, user.username).json()["access_token"]
    assert api.post("/auth/logout", token=token).status_code == 204
    response = api.get("/me", token=token)
    assert response.status_code == 401 and error_code(response) == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_browser_session_is_not_accepted(api: Api, signed_in_client, user: User) -> None:  # type: ignore[no-untyped-def]
    """A signed-in browser's session cookie does not authenticate API calls (no CSRF exposure)."""
    response = Api(signed_in_client).get("/me")
    assert signed_in_client.get("/account").status_code == 200
    assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_sign_in_is_audited(api: Api, user: User) -> None:
    """An API sign-in leaves a login event marked as coming from the API."""
    login(api, user.username)
    event = AuthEvent.objects.filter(kind="login", outcome="success").get()
    assert event.user_id == user.pk and event.detail == {"channel": "api"}


def test_second_step_then_password_change_required(api: Api, make_user, two_factor_on: None) -> None:  # type: ignore[no-untyped-def]
    """A correct code from a user who must change their password: 403 and no token; the code is spent (FB-05)."""
    newbie = make_user("newbie", must_change_password=True)
    key = enrol_totp(newbie)
    code = totp.totp(key, clock.timestamp())
    login_token = login(api, "newbie").json()["login_token"]
    response = api.post("/auth/login/verify", {"login_token": login_token, "code": code})
    assert response.status_code == 403 and error_code(response) == "password_change_required"
    assert not AccessToken.objects.exists()
    again = login(api, "newbie").json()["login_token"]
    replay = api.post("/auth/login/verify", {"login_token": again, "code": code})
    assert replay.status_code == 401 and error_code(replay) == "second_step_failed"


def test_sign_in_that_cannot_issue_a_token_keeps_the_code(
    api: Api, user: User, two_factor_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code's consumption and the token share one commit: when issuing fails, nothing is spent (FLT-05)."""
    from twostep.api import tokens

    key = enrol_totp(user)
    code = totp.totp(key, clock.timestamp())
    login_token = login(api, user.username).json()["login_token"]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the token table is unavailable")

    monkeypatch.setattr(tokens, "issue_sign_in_token", broken)
    failed = api.post("/auth/login/verify", {"login_token": login_token, "code": code})
    assert failed.status_code == 500 and "access_token" not in failed.content.decode()
    monkeypatch.undo()
    verified = api.post("/auth/login/verify", {"login_token": login_token, "code": code})
    assert verified.status_code == 200, verified.content
    assert AuthEvent.objects.filter(kind="login.second_step", outcome="success").count() == 1


def test_code_field_takes_only_a_string_of_six_ascii_digits(api: Api, user: User, two_factor_on: None) -> None:
    """Other JSON types, other lengths, numeric spellings and huge values never sign in, never 500 (FUZZ-01, FUZZ-04, FUZZ-05)."""
    key = enrol_totp(user)
    code = totp.totp(key, clock.timestamp())
    typed: list[object] = [int(code), None, True, [], [code], {"$ne": None}, {"code": {"code": code}}, 1e5]
    spelled = ["", "1", code[:5], code + "0", code + "00", "1" * 33, "1" * 100_000, f"+{code}", f"-{code}",
               f"{code[:1]}_{code[1:]}", f"{code}.0", f"{int(code)}e0", hex(int(code)), f"{code[:3]}\u00a0{code[3:]}"]  # fmt: skip
    for value in [*typed, *spelled]:
        login_token = login(api, user.username).json()["login_token"]
        response = api.post("/auth/login/verify", {"login_token": login_token, "code": value})
        assert response.status_code in {400, 401, 413}, (value, response.content[:200])
        assert "access_token" not in response.content.decode()
        User.objects.filter(pk=user.pk).update(second_step_failures=0, second_step_blocked_until=None)
    assert not AccessToken.objects.filter(user=user).exists()
    login_token = login(api, user.username).json()["login_token"]
    verified = api.post("/auth/login/verify", {"login_token": login_token, "code": code})
    assert verified.status_code == 200, verified.content  # nothing above spent the step


@pytest.mark.parametrize("method", ["TOTP", "Totp", "sms ", "email\u0000", "push", "x" * 1000, 1, ["totp"]])
def test_method_names_must_be_exact(api: Api, user: User, two_factor_on: None, method: object) -> None:
    """A method that is not exactly one of the known names is refused at both steps (FUZZ-08)."""
    enrol_totp(user)
    refused = login(api, user.username, method=method)
    assert refused.status_code == 400 and error_code(refused) == "invalid_request"
    login_token = login(api, user.username).json()["login_token"]
    switched = api.post("/auth/login/method", {"login_token": login_token, "method": method})
    assert switched.status_code == 400 and error_code(switched) == "invalid_request"


@pytest.mark.parametrize(
    "extra",
    [{"skip2fa": True}, {"mfa": False}, {"remember_device": True}, {"trusted": True}, {"second_step": "done"}],
)
def test_client_flags_cannot_skip_the_second_step(
    api: Api, user: User, two_factor_on: None, extra: dict[str, object]
) -> None:
    """Flags a client might add to skip the second step, and debug or forwarding headers, give no token (FB-03)."""
    enrol_totp(user)
    headers = {"HTTP_X_DEBUG": "1", "HTTP_X_FORWARDED_FOR": "127.0.0.1", "HTTP_X_REAL_IP": "10.0.0.1"}
    body = {"username": user.username, "password": PASSWORD}
    flagged = api.post("/auth/login", {**body, **extra}, **headers)
    assert flagged.status_code == 400 and "access_token" not in flagged.content.decode()
    plain = api.post("/auth/login", body, **headers)
    assert plain.json()["status"] == "second_step_required" and "access_token" not in plain.json()
    assert not AccessToken.objects.filter(user=user).exists()


def test_wrong_codes_through_the_api_lock_at_the_configured_limit(
    api: Api, user: User, two_factor_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """A scripted loop of wrong codes over fresh login tokens stops at the account limit, right code included (BF-15)."""
    from django.conf import settings

    key = enrol_totp(user)
    limit = settings.CONFIG.security.second_step_lock_after
    for _ in range(limit):
        frozen_clock.advance(901)  # past any growing delay: only the lock stops this loop
        login_token = login(api, user.username).json()["login_token"]
        response = api.post("/auth/login/verify", {"login_token": login_token, "code": a_wrong_code(key)})
        assert response.status_code == 401
    user.refresh_from_db()
    assert user.second_step_failures == limit and user.second_step_locked_at is not None
    frozen_clock.advance(3600)
    login_token = login(api, user.username).json()["login_token"]
    code = totp.totp(key, clock.timestamp())
    right = api.post("/auth/login/verify", {"login_token": login_token, "code": code})
    assert right.status_code == 401 and error_code(right) == "second_step_failed"
    assert not AccessToken.objects.filter(user=user).exists()


def test_the_body_alone_carries_the_code(api: Api, user: User, two_factor_on: None) -> None:
    """A name repeated in the JSON body is refused, whichever value comes last; a code in the query is ignored (FUZZ-06)."""
    key = enrol_totp(user)
    code = totp.totp(key, clock.timestamp())
    login_token = login(api, user.username).json()["login_token"]
    wrong = a_wrong_code(key)
    for first, last in [(wrong, code), (code, wrong)]:
        repeated = f'{{"login_token": "{login_token}", "code": "{first}", "code": "{last}"}}'.encode()
        response = api.post("/auth/login/verify", raw=repeated)
        assert response.status_code == 400 and error_code(response) == "invalid_request"
    in_query = api.post(f"/auth/login/verify?code={code}", {"login_token": login_token, "code": wrong})
    assert in_query.status_code == 401 and error_code(in_query) == "second_step_failed"
    assert not AccessToken.objects.filter(user=user).exists()
    verified = api.post("/auth/login/verify?code=000000", {"login_token": login_token, "code": code})
    assert verified.status_code == 200, verified.content


def test_second_step_is_revealed_only_after_the_right_password(
    api: Api,
    user: User,
    make_user,
    two_factor_on: None,  # type: ignore[no-untyped-def]
) -> None:
    """A wrong password answers the same for an account with a second factor, one without, and no account (ENUM-02)."""
    from django.test import Client

    enrol_totp(user)
    make_user("bob")
    answers = [login(api, name, "wrong password!") for name in (user.username, "bob", "nobody-here")]
    assert {(r.status_code, r.content) for r in answers} == {(answers[0].status_code, answers[0].content)}
    seen = [headers_and_cookies(r) for r in answers]  # the bodies are compared just above
    assert seen[0] == seen[1] == seen[2]
    body = answers[0].content.decode()
    assert not [word for word in ("totp", "method", "login_token", "•") if word in body], body
    pages = []
    for name in (user.username, "bob"):
        response = Client().post("/login", {"username": name, "password": "wrong password!"})
        pages.append((response.status_code, response.content.decode().replace(str(response.context["csrf_token"]), "")))
    assert pages[0][0] == pages[1][0] == 200
    assert pages[0][1].replace(user.username, "NAME") == pages[1][1].replace("bob", "NAME")
    assert "/login/verify" not in pages[0][1]


def test_leading_zeros_are_part_of_the_code(
    api: Api, client: Client, user: User, two_factor_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """A code that starts with zeros is typed with them: "005924" passes, "5924" does not, on the API and
    on the page (OTP-04)."""
    key = enrol_totp(user)
    now = totp.time_step(clock.timestamp())
    step = next(s for s in range(now + 2, now + 10_000) if totp.hotp(key, s).startswith("00"))
    frozen_clock.advance(step * totp.DEFAULT_PERIOD + 10 - clock.timestamp())
    code = totp.hotp(key, step)
    stripped = code.lstrip("0") or "0"

    login_token = login(api, user.username).json()["login_token"]
    refused = api.post("/auth/login/verify", {"login_token": login_token, "code": stripped})
    assert refused.status_code == 401
    signed_in = api.post("/auth/login/verify", {"login_token": login_token, "code": code})
    assert signed_in.status_code == 200, signed_in.content

    # The page, with the next step's code (each step works once), also zero-led when it is.
    page_step = next(s for s in range(step + 1, step + 10_000) if totp.hotp(key, s).startswith("0"))
    frozen_clock.advance((page_step - step) * totp.DEFAULT_PERIOD)
    page_code = totp.hotp(key, page_step)
    assert client.post("/login", {"username": user.username, "password": PASSWORD})["Location"] == "/login/verify"
    assert client.post("/login/verify", {"code": page_code.lstrip("0")}).status_code == 200
    assert client.post("/login/verify", {"code": page_code})["Location"] == "/account"
