"""Under a 2FA requirement, a first authenticator app or SMS number needs a code from the user's mailbox first (FB-10).

The threat: a thief with the password alone signs in, is sent to enrol, and
binds his own authenticator to the account.  With
``two_factor.enrolment_email_check`` on, he must first enter a code sent to
one of the addresses an administrator put on the account.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from django.test import Client

from tests.api.conftest import Api, allow_only, api, error_code
from tests.concurrency import at_once
from tests.conftest import sign_in
from tests.mail.smtp_server import (
    Certificates,
    SmtpServer,
    certificates,
    closed_port,
    configure_twostep,
    mail_server,
    smtp_server,
)
from tests.mfa.email.conftest import BACKUP
from tests.mfa.enforcement.test_gates import fresh, require
from tests.mfa.races import attempt, just_before
from tests.mfa.recovery_codes.helpers import enrol_totp, events, signed_in_with_totp
from twostep.accounts.models import User
from twostep.api import tokens
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.runtime import SettingError, get_setting, set_setting
from twostep.factors import totp
from twostep.mfa import codes, email_check
from twostep.mfa.models import Authenticator, EmailCheck, OneTimeCode

__all__ = ["api", "certificates", "closed_port", "mail_server", "smtp_server"]

pytestmark = pytest.mark.django_db

ENROL = "/account/security/enrol"
CHECK = "/account/security/enrol/email-check"
TOTP_SETUP = "/account/security/totp"


@pytest.fixture
def check_on(mail_server: SmtpServer, two_factor_on: None) -> SmtpServer:
    """Everyone must enrol, at once; the email check is on and mail goes to the test SMTP server."""
    require()
    set_setting(email_check.KEY, True)
    return mail_server


def address_id(user: User, email: str = BACKUP) -> int:
    return int(user.email_addresses.get(email=email).pk)


def pass_check(client: Client, user: User, server: SmtpServer, method: str = "totp") -> None:
    """Send the code to the backup address and enter it, as the user would."""
    sent = client.post(f"{CHECK}?method={method}", {"action": "send", "address": address_id(user)})
    assert sent.status_code == 302, sent
    done = client.post(f"{CHECK}?method={method}", {"action": "confirm", "code": server.last_code(BACKUP)})
    assert done.status_code == 302 and done["Location"] == f"/account/security/{method}", done


def test_setting_needs_smtp(db: None) -> None:
    """The check cannot be turned on while no mail server is set up: every enrolment would then be stuck."""
    set_setting("email.host", "")
    with pytest.raises(SettingError, match="needs outgoing mail"):
        set_setting(email_check.KEY, True)
    set_setting("email.host", "mail.example.com")
    set_setting(email_check.KEY, True)


def test_password_alone_cannot_reach_totp_setup(client: Client, user: User, check_on: SmtpServer) -> None:
    """Signed in with the password, the user is sent from the TOTP set-up page to the check; no secret is shown."""
    sign_in(client, user.username)
    enrol = client.get(ENROL).content.decode()
    assert "we will send a code to one of your email addresses" in enrol
    response = client.get(TOTP_SETUP)
    assert response.status_code == 302 and response["Location"] == f"{CHECK}?method=totp"
    assert client.post(TOTP_SETUP, {"code": "123456"})["Location"] == f"{CHECK}?method=totp"
    assert not Authenticator.objects.filter(user=user).exists()
    page = client.get(f"{CHECK}?method=totp").content.decode()
    # Its own title: "Confirm it's you" is the password prompt's.
    assert "<h1>Confirm your email address</h1>" in page and "Confirm it&#x27;s you" not in page
    assert "<title>Confirm your email address" in page and BACKUP in page and "alice@example.com" in page


def test_check_then_enrol(client: Client, user: User, check_on: SmtpServer) -> None:
    """A wrong code keeps the gate shut; the mailed code opens it, and the app can then be set up."""
    sign_in(client, user.username)
    client.post(f"{CHECK}?method=totp", {"action": "send", "address": address_id(user)})
    message = check_on.messages()[-1]
    assert BACKUP in message.rcpt_tos and "about to set up a second sign-in step" in message.text
    code = check_on.last_code(BACKUP)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    refused = client.post(f"{CHECK}?method=totp", {"action": "confirm", "code": wrong})
    assert refused.status_code == 200 and "That code didn&#x27;t match" in refused.content.decode()
    assert client.get(TOTP_SETUP)["Location"] == f"{CHECK}?method=totp"
    done = client.post(f"{CHECK}?method=totp", {"action": "confirm", "code": code})
    assert done["Location"] == TOTP_SETUP
    fresh(client)
    page = client.get(TOTP_SETUP)
    assert page.status_code == 200
    secret = page.context["provisioning"].secret
    response = client.post(TOTP_SETUP, {"code": totp.totp(totp.decode_secret(secret), clock.timestamp())})
    assert response["Location"] == "/account/security"
    assert Authenticator.objects.filter(user=user, method="totp", confirmed_at__isnull=False).exists()
    assert [(e.outcome, e.reason) for e in events("email_check")] == [("failure", "wrong_code"), ("success", "")]


def test_a_pass_belongs_to_its_session(user: User, check_on: SmtpServer) -> None:
    """Another browser signed in with the same password does not ride on the owner's check."""
    owner, thief = Client(), Client()
    sign_in(owner, user.username)
    sign_in(thief, user.username)
    pass_check(owner, user, check_on)
    assert owner.get(TOTP_SETUP).status_code == 200
    assert thief.get(TOTP_SETUP)["Location"] == f"{CHECK}?method=totp"


def test_a_pass_lasts_thirty_minutes(
    client: Client, user: User, check_on: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """After ``PASSED_FOR`` the check is asked again."""
    sign_in(client, user.username)
    pass_check(client, user, check_on)
    frozen_clock.advance(email_check.PASSED_FOR.total_seconds() - 60)
    fresh(client)
    assert client.get(TOTP_SETUP).status_code == 200
    frozen_clock.advance(120)
    assert client.get(TOTP_SETUP)["Location"] == f"{CHECK}?method=totp"


def test_sms_setup_is_checked_too(client: Client, user: User, check_on: SmtpServer) -> None:
    """An SMS number is the other factor a thief could bind; its set-up waits for the check as well."""
    allow_only("totp", "email", "sms")
    sign_in(client, user.username)
    assert client.get("/account/security/sms")["Location"] == f"{CHECK}?method=sms"
    pass_check(client, user, check_on, method="sms")
    assert client.get("/account/security/sms").status_code == 200


def test_email_codes_need_no_separate_check(client: Client, user: User, check_on: SmtpServer) -> None:
    """Setting up email codes proves an address by itself, so its page opens at once."""
    set_setting("two_factor.methods", ["totp", "email"])
    sign_in(client, user.username)
    assert client.get("/account/security/email").status_code == 200


def test_smtp_failure_lets_nobody_through(
    client: Client,
    user: User,
    check_on: SmtpServer,
    closed_port: int,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the mail server down the page says so, nothing is left to guess, and the gate stays shut."""
    sign_in(client, user.username)
    configure_twostep(monkeypatch, certificates, closed_port)
    response = client.post(f"{CHECK}?method=totp", {"action": "send", "address": address_id(user)})
    assert "We could not send the code. Try again in a moment." in response.content.decode()
    assert not OneTimeCode.objects.filter(user=user).exists()
    assert events("email_check.code_sent")[-1].reason == "delivery_failed"
    assert client.get(TOTP_SETUP)["Location"] == f"{CHECK}?method=totp"
    # Coming back, the page does not ask for a code that never went out.
    page = client.get(f"{CHECK}?method=totp").content.decode()
    assert "Enter the code sent to" not in page and "No code could be sent to" in page


def test_only_the_users_own_addresses(
    client: Client, user: User, make_user: Callable[..., User], check_on: SmtpServer
) -> None:
    """An address id of another account is refused and nothing is sent."""
    other = make_user("bob", emails=["bob@example.com"])
    sign_in(client, user.username)
    response = client.post(f"{CHECK}?method=totp", {"action": "send", "address": address_id(other, "bob@example.com")})
    assert "Choose one of the addresses on your account." in response.content.decode()
    assert check_on.messages() == []


def test_without_an_address_the_page_says_whom_to_ask(
    client: Client, make_user: Callable[..., User], check_on: SmtpServer
) -> None:
    """A user with no address cannot pass: both pages send them to an administrator."""
    make_user("carol")
    sign_in(client, "carol")
    enrol = client.get(ENROL).content.decode()
    assert "no email address to confirm it&#x27;s you first" in enrol
    page = client.get(f"{CHECK}?method=totp").content.decode()
    assert "Ask an administrator to add an address" in page


@pytest.mark.parametrize("situation", ["setting_off", "not_required", "already_enrolled", "two_factor_off"])
def test_not_asked_when_it_protects_nothing(client: Client, user: User, check_on: SmtpServer, situation: str) -> None:
    """Only a user who must enrol and has no factor yet is checked, and only while the setting and 2FA are on."""
    if situation == "setting_off":
        set_setting(email_check.KEY, False)
    elif situation == "not_required":
        require("nobody")
    elif situation == "already_enrolled":
        enrol_totp(user)
        allow_only("totp", "email", "sms")
    else:
        set_setting("two_factor.enabled", False)
    assert not email_check.needed(user, "totp") and not email_check.needed(user, "sms")
    if situation == "already_enrolled":
        return
    sign_in(client, user.username)
    fresh(client)
    assert client.get(TOTP_SETUP).status_code == 200


def test_api_asks_for_the_check(api: Api, user: User, check_on: SmtpServer) -> None:
    """Through the API: 403 email_check_required, then the check with the mailed code, then set-up works."""
    secret = tokens.issue_sign_in_token(user, origin=CLI).secret
    other = tokens.issue_sign_in_token(user, origin=CLI).secret
    setup = api.get("/me/factors/setup", token=secret).json()
    assert setup["email_check_required"] is True
    assert {e["email"]: e["id"] for e in setup["emails"]} == {
        "alice@example.com": address_id(user, "alice@example.com"),
        BACKUP: address_id(user),
    }
    refused = api.post("/me/factors/totp", token=secret)
    assert refused.status_code == 403 and error_code(refused) == "email_check_required"
    sent = api.post("/me/factors/email-check", {"email_id": address_id(user)}, token=secret)
    assert sent.status_code == 200 and sent.json()["destination"] == BACKUP
    wrong = api.post("/me/factors/email-check/confirm", {"code": "000000"}, token=secret)
    code = check_on.last_code(BACKUP)
    if code != "000000":
        assert wrong.status_code == 422 and error_code(wrong) == "invalid_code"
    passed = api.post("/me/factors/email-check/confirm", {"code": code}, token=secret)
    assert passed.status_code == 200 and "passed_until" in passed.json()
    assert api.post("/me/factors/totp", token=secret).status_code == 200
    assert api.get("/me/factors/setup", token=secret).json()["email_check_required"] is False
    assert api.get("/me/factors/setup", token=other).json()["email_check_required"] is True
    # The other token of the same user did not pass.
    assert error_code(api.post("/me/factors/totp", token=other)) == "email_check_required"
    allow_only("totp", "email", "sms")
    phone_id = user.phone_numbers.get().pk
    assert error_code(api.post("/me/factors/sms", {"phone_id": phone_id}, token=other)) == "email_check_required"


def test_api_check_not_needed(api: Api, user: User, check_on: SmtpServer) -> None:
    """A user of whom no check is asked gets 409 method_unavailable from the check endpoint, and no mail."""
    enrol_totp(user)
    secret = tokens.issue_sign_in_token(user, origin=CLI).secret
    response = api.post("/me/factors/email-check", {"email_id": address_id(user)}, token=secret)
    assert response.status_code == 409 and error_code(response) == "method_unavailable"
    assert check_on.messages() == [] and not EmailCheck.objects.exists()


def test_console_turns_it_on_only_with_mail(client: Client, admin: User, two_factor_on: None) -> None:
    """The policy page saves the setting, and says why when outgoing mail is missing."""
    key = enrol_totp(admin)
    assert signed_in_with_totp(client, admin, key).status_code == 302
    form = {"required": "everyone", "grace_sign_ins": "0", "trusted_days": "30", "email_check": "on"}
    set_setting("email.host", "")
    refused = client.post("/admin/two-factor", form)
    assert refused.status_code == 200 and "needs outgoing mail" in refused.content.decode()
    assert get_setting(email_check.KEY) is False and get_setting("two_factor.required") == "nobody"
    set_setting("email.host", "mail.example.com")
    assert client.post("/admin/two-factor", form)["Location"] == "/admin/two-factor"
    assert get_setting(email_check.KEY) is True


def test_switching_addresses_does_not_reset_the_send_limits(
    client: Client, user: User, check_on: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """Each address starts a new check, but the account still gets at most 5 codes in 15 minutes: 25 guesses, not more."""
    sign_in(client, user.username)
    ids = [address_id(user, "alice@example.com"), address_id(user)]
    for send in range(8):
        client.post(f"{CHECK}?method=totp", {"action": "send", "address": ids[send % 2]})
        frozen_clock.advance(5)
    assert len(check_on.messages()) == 5
    assert events("email_check.code_sent")[-1].reason == "account_limit"


def test_resend_goes_to_the_address_being_checked(
    client: Client, user: User, check_on: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """The "Send a new code" button mails the address being checked after the cooldown; the newest code passes."""
    sign_in(client, user.username)
    nothing = client.post(f"{CHECK}?method=totp", {"action": "resend"}).content.decode()
    assert "Choose an address and send a code first." in nothing and check_on.messages() == []
    client.post(f"{CHECK}?method=totp", {"action": "send", "address": address_id(user)})
    early = client.post(f"{CHECK}?method=totp", {"action": "resend"}).content.decode()
    assert "You can ask for a new code in" in early and len(check_on.messages()) == 1
    frozen_clock.advance(61)
    assert client.post(f"{CHECK}?method=totp", {"action": "resend"}).status_code == 302
    assert [m.rcpt_tos for m in check_on.messages()] == [[BACKUP], [BACKUP]]
    done = client.post(f"{CHECK}?method=totp", {"action": "confirm", "code": check_on.last_code(BACKUP)})
    assert done["Location"] == TOTP_SETUP


def test_wrong_codes_spend_the_accounts_budget(
    client: Client, user: User, check_on: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """Guessing the check's code waits, then locks the account, as wrong sign-in codes do; the right code is then refused.

    Each new code brought five fresh tries and nothing else counted them:
    with the send caps, some 2 000 guesses a day for a password thief.
    """
    sign_in(client, user.username)
    page = f"{CHECK}?method=totp"
    client.post(page, {"action": "send", "address": address_id(user)})
    code = check_on.last_code(BACKUP)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    waited = 0
    for _ in range(60):  # far more than the lock needs
        if User.objects.get(pk=user.pk).second_step_locked_at is not None:
            break
        answer = client.post(page, {"action": "confirm", "code": wrong}).content.decode()
        if "Too many wrong codes. Wait a moment" in answer:
            waited += 1
            frozen_clock.advance(15 * 60)
    assert User.objects.get(pk=user.pk).second_step_failures == 20 and waited == 15
    refused = client.post(page, {"action": "confirm", "code": code})
    assert "Your second step is locked" in refused.content.decode()
    fresh(client)
    assert client.get(TOTP_SETUP)["Location"] == page
    assert events("second_step.locked")
    # Waiting out each delay (15 minutes here) let the code expire: guesses at a dead code count too.
    assert [e.reason for e in events("email_check")] == (
        ["wrong_code"] * 5 + ["throttled", "expired_code"] * waited + ["locked"]
    )


def test_api_answers_a_spent_budget(api: Api, user: User, check_on: SmtpServer) -> None:
    """The API says 429 with Retry-After while wrong codes must wait, and 403 second_step_locked once locked."""
    secret = tokens.issue_sign_in_token(user, origin=CLI).secret
    api.post("/me/factors/email-check", {"email_id": address_id(user)}, token=secret)
    code = check_on.last_code(BACKUP)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answers = [api.post("/me/factors/email-check/confirm", {"code": wrong}, token=secret) for _ in range(6)]
    assert [error_code(a) for a in answers] == ["invalid_code"] * 5 + ["rate_limited"]
    assert int(answers[-1]["Retry-After"]) >= 1
    User.objects.filter(pk=user.pk).update(second_step_blocked_until=None, second_step_locked_at=clock.now())
    locked = api.post("/me/factors/email-check/confirm", {"code": code}, token=secret)
    assert locked.status_code == 403 and error_code(locked) == "second_step_locked"


def test_policy_page_names_who_the_check_would_strand(
    client: Client, admin: User, make_user: Callable[..., User], check_on: SmtpServer
) -> None:
    """Users who must enrol but have no address to prove are named, the signed-in administrator first."""
    key = enrol_totp(admin)
    assert signed_in_with_totp(client, admin, key).status_code == 302
    make_user("noaddress")
    make_user("hasaddress", emails=["has@example.com"])
    make_user("otheradmin", role="admin")
    page = client.get("/admin/two-factor").content.decode()
    assert "2 of them have none and cannot" in page
    assert page.index(">otheradmin</a>") < page.index(">noaddress</a>")
    assert ">hasaddress</a>" not in page.split("turn the email check off")[0]
    set_setting(email_check.KEY, False)
    assert "have none and cannot" not in client.get("/admin/two-factor").content.decode()


def test_policy_that_would_lock_out_its_own_administrator_is_refused(
    client: Client, admin: User, two_factor_on: None
) -> None:
    """An administrator with no second step and no address cannot turn on a check they could not pass."""
    from twostep.accounts import services

    set_setting("email.host", "mail.example.com")
    assert sign_in(client, admin.username).status_code == 302
    form = {"required": "admins", "grace_sign_ins": "3", "trusted_days": "30", "email_check": "on"}
    refused = client.post("/admin/two-factor", form)
    assert refused.status_code == 200 and "could not set up a second step yourself" in refused.content.decode()
    assert get_setting(email_check.KEY) is False and get_setting("two_factor.required") == "nobody"
    # Not required of administrators: nothing to lock them out of.
    assert client.post("/admin/two-factor", {**form, "required": "roles", "roles": "user"}).status_code == 302
    assert get_setting(email_check.KEY) is True
    set_setting(email_check.KEY, False)
    services.add_email(admin, "root@example.com", origin=CLI)
    assert client.post("/admin/two-factor", form).status_code == 302
    assert get_setting(email_check.KEY) is True and get_setting("two_factor.required") == "admins"


def test_turning_2fa_on_cannot_strand_the_administrator_doing_it(client: Client, admin: User, db: None) -> None:
    """The same guard on the Authentication page: 2FA switched on under a policy its author could not meet."""
    set_setting("email.host", "mail.example.com")
    set_setting("two_factor.required", "everyone")
    set_setting(email_check.KEY, True)
    assert sign_in(client, admin.username).status_code == 302
    asked = client.post("/admin/authentication", {"enabled": "on", "methods": ["totp"]})
    assert 'id="applies-to-you"' in asked.content.decode()  # first: it applies to you
    refused = client.post("/admin/authentication", {"enabled": "on", "methods": ["totp"], "confirm_self": "yes"})
    assert refused.status_code == 200 and "could not set up a second step yourself" in refused.content.decode()
    assert get_setting("two_factor.enabled") is False


@pytest.mark.parametrize(("mode", "grace"), [("everyone", 0), ("everyone", 3), ("admins", 0), ("nobody", 0)])
def test_the_policy_page_names_exactly_whom_the_check_strands(
    make_user: Callable[..., User], check_on: SmtpServer, mode: str, grace: int
) -> None:
    """The policy page's list (one SQL query) and the check itself (``email_check.strands``, per user) agree,
    for users with and without an address, a factor, a withdrawn method, either role, deactivated, in a
    grace period or not."""
    from twostep.mfa.compliance import cannot_prove_an_address

    require(mode, sign_ins=grace)
    people = []
    for role in ("user", "admin"):
        for emails in ([], [f"{role}@example.com"]):
            people.append(make_user(role=role, emails=list(emails)))
            people.append(enrolled := make_user(role=role, emails=list(emails)))
            enrol_totp(enrolled)
            withdrawn = make_user(role=role, emails=list(emails))
            Authenticator.objects.create(
                user=withdrawn, method="sms", destination="+15551234567", confirmed_at=clock.now()
            )
            people.append(withdrawn)
            people.append(gone := make_user(role=role, emails=list(emails)))
            gone.is_active = False
            gone.save(update_fields=["is_active"])
    count, names = cannot_prove_an_address(limit=len(people))
    stranded = sorted(p.username for p in people if email_check.strands(User.objects.get(pk=p.pk)))
    assert sorted(names) == stranded and count == len(stranded)
    assert stranded or mode == "nobody"


def test_check_moved_while_its_code_is_being_sent_says_start_again(
    api: Api, user: User, check_on: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another tab moves the check to another address between this one saving it and making its code.

    The page (and the API, 409 ``conflict``) says the check ended and sends
    nothing for it, instead of failing with a server error.
    """
    client = Client()
    sign_in(client, user.username)

    def another_tab() -> None:
        check = EmailCheck.objects.filter(user=user).latest("pk")  # the one being sent for
        email_check.start(user, address_id(user, "alice@example.com"), check.holder, CLI)

    just_before(monkeypatch, codes, "issue", another_tab)
    page = client.post(f"{CHECK}?method=totp", {"action": "send", "address": address_id(user)}).content.decode()
    assert "The check was started again on another address while the code was being sent" in page
    # Only the other tab's code went out.
    assert [m.rcpt_tos for m in check_on.messages()] == [["alice@example.com"]]

    secret = tokens.issue_sign_in_token(user, origin=CLI).secret
    just_before(monkeypatch, codes, "issue", another_tab)
    response = api.post("/me/factors/email-check", {"email_id": address_id(user)}, token=secret)
    assert response.status_code == 409 and error_code(response) == "conflict"
    assert "ended while its code was being sent" in response.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_confirming_while_another_tab_moves_the_check_does_not_deadlock(
    user: User, check_on: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """The code is typed in one tab at the moment another tab starts the check again on another address.

    Starting again locks the account's row, then deletes the check; the
    confirmation must lock the account's row before the check's, or the two
    deadlock on PostgreSQL and one tab gets "database unavailable".
    """
    holder = "tab-holder"

    def move() -> str:
        email_check.start(user, address_id(user, "alice@example.com"), holder, CLI)
        return "moved"

    for _ in range(25):
        frozen_clock.advance(16 * 60)  # past the send caps of the previous round
        email_check.start(user, address_id(user), holder, CLI)
        confirm = attempt(
            partial(email_check.confirm, user, check_on.last_code(BACKUP), holder, CLI),
            "passed",
            email_check.CheckError,
        )
        assert sorted(at_once([confirm, move])) in (["moved", "passed"], ["moved", "refused"])
        EmailCheck.objects.filter(user=user).delete()
