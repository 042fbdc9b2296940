"""Request and response bodies of the API.

Request bodies refuse unknown fields and wrong types (``extra="forbid"``,
strict mode), and every free-text field refuses control characters, so the
OpenAPI document says exactly what is accepted.  Rules the schema cannot
express (password strength, a phone number's validity) are the services'
and answer 422 ``invalid_value``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le, MaxLen
from ninja import Schema
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from twostep.accounts.validators import MAX_PASSWORD_LENGTH

#: No C0 control characters and no DEL (so no NUL, which PostgreSQL refuses).
NO_CONTROL = r"^[^\u0000-\u001f\u007f]*$"
NO_NUL = r"^[^\u0000]*$"
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TOKEN_ID_PATTERN = r"^[0-9a-f]{16}$"  # noqa: S105 - a pattern, not a secret
MAX_ID = 2**63 - 1


LoginName = Annotated[str, StringConstraints(min_length=1, max_length=150, pattern=NO_CONTROL)]
LoginToken = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_CONTROL)]
CodeText = Annotated[str, StringConstraints(max_length=32, pattern=NO_CONTROL)]
#: A recovery code as printed (dashes and spaces allowed); checked by the service.
RecoveryCodeText = Annotated[str, StringConstraints(max_length=64, pattern=NO_CONTROL)]
DisplayName = Annotated[str, StringConstraints(max_length=150, pattern=NO_CONTROL)]
EmailText = Annotated[str, StringConstraints(min_length=1, max_length=254, pattern=NO_CONTROL)]
PhoneText = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=NO_CONTROL)]
TokenName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_CONTROL)]
SETTING_KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
SettingKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SETTING_KEY_PATTERN)]


def _integral(value: object) -> object:
    # JSON Schema counts 3.0 as an integer; strict pydantic would not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An integer in a JSON body: 3 or 3.0, never "3" or true.
Integer = Annotated[int, BeforeValidator(_integral)]


def _digits(value: object) -> object:
    # Python's int() would also read "1_0" as 10, and " +1" or "1.0" pass pydantic's lax mode.
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,9}", value):
        raise ValueError("must be a whole number written in digits, e.g. 2")
    return value


#: An integer in a query string: digits only.
QueryInteger = Annotated[int, BeforeValidator(_digits)]

Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH, pattern=NO_NUL)]
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Role = Literal["user", "admin"]
ScopeName = Literal["read", "security", "admin"]
MethodName = Literal["totp", "email", "sms"]


#: RFC 3339 date-time; pydantic alone would also take "0.5" as a Unix time.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?", re.ASCII)


def _rfc3339_text(value: object) -> object:
    if isinstance(value, str) and not RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2027-01-31T12:00:00Z")
    return value


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _clamp(value: datetime) -> datetime:
    # Instants near year 1 or 9999 overflow when converted to UTC for the
    # database; as filter bounds they mean "from the start" / "until the end".
    if value.year < 1971:
        return EARLIEST
    if value.year > 8999:
        return LATEST
    return value.astimezone(UTC)


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_clamp)]


class Input(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)


class Output(Schema):
    """An answer's body: every field is always sent (a null or empty one included), so the document
    marks them all required."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


# --- sign-in -----------------------------------------------------------------


class LoginIn(Input):
    username: LoginName
    password: Password
    #: Ask for this second-step method if the user has it (default: their first).
    method: MethodName | None = None


class EnrolmentDueOut(Output):
    now: bool = Field(
        description="Set up a second factor before anything else: until then this token reaches only "
        "`/api/v1/me/factors…` and the email check (elsewhere 403 `enrolment_required`)."
    )
    deadline: datetime | None = Field(description="While a grace period lasts: the date it ends, if one was set.")
    sign_ins_left: int | None = Field(
        description="While a grace period lasts: sign-ins left without a second factor, if a number was set."
    )


class SignedInOut(Output):
    status: Literal["signed_in"]
    access_token: str = Field(description="Send as `Authorization: Bearer <token>`. Shown once.")
    token_type: Literal["Bearer"]
    expires_at: datetime = Field(description="The absolute end of the token.")
    idle_timeout: int = Field(description="Seconds without use after which the token ends.")
    scopes: list[ScopeName]
    recovery_codes_left: int | None = Field(
        default=None, description="After signing in with a recovery code: how many unused codes remain."
    )
    enrolment: EnrolmentDueOut | None = Field(
        default=None,
        description="When the administrator requires this user to set up a second factor they do not have: "
        "now, or by when. Null otherwise.",
    )


class SecondStepOut(Output):
    status: Literal["second_step_required"]
    login_token: str = Field(description="Send with the code to /api/v1/auth/login/verify. Shown once.")
    method: str = Field(description="The method asked for.")
    methods: list[str] = Field(description="Every method this user can use; sign in again with `method` to switch.")
    prompt: str = Field(
        description="What to tell the user: where the code went, or, when none could be sent, why "
        "(then `/auth/login/resend` tries again, or `/auth/login/method` picks another method)."
    )
    code_sent: bool | None = Field(
        description="For methods that send a code (email, SMS): whether one is on its way for this sign-in. "
        "null for an authenticator app."
    )
    expires_at: datetime


class LoginVerifyIn(Input):
    login_token: LoginToken
    #: Checked by the service (exactly six digits); a malformed code is refused like a wrong one, not counted
    #: against the account (it uses one of the sign-in's own tries).
    code: CodeText


class RecoveryLoginIn(Input):
    login_token: LoginToken
    code: RecoveryCodeText


class MethodSwitchIn(Input):
    login_token: LoginToken
    method: MethodName


class LoginResendIn(Input):
    login_token: LoginToken


# --- the caller ----------------------------------------------------------------


class EmailOut(Output):
    id: int
    email: str
    primary: bool


class PhoneOut(Output):
    id: int
    number: str
    primary: bool


#: On an address or number just added: the other accounts that have it too.
AlsoOn = Field(
    description="Other accounts (usernames) with the same address or number, e.g. a typo or a shared phone: "
    "codes sent there reach whoever reads it. Added all the same; empty when none."
)


class EmailAddedOut(EmailOut):
    also_on: list[str] = AlsoOn


class PhoneAddedOut(PhoneOut):
    also_on: list[str] = AlsoOn


class FactorOut(Output):
    method: str
    destination: str | None = Field(description="Where codes go (email/SMS); null for an authenticator app.")
    usable: bool = Field(
        description="False when the address or number it sends codes to is no longer on the account: it cannot "
        "sign in until it is set up again."
    )
    confirmed_at: datetime
    last_used_at: datetime | None


class TwoFactorStateOut(Output):
    active: bool = Field(description="Second factors are asked for at sign-in.")
    allowed_methods: list[str]
    forced_off_by_config: bool


class TokenOut(Output):
    id: str
    kind: Literal["sign_in", "personal"]
    name: str
    scopes: list[ScopeName]
    created_at: datetime
    expires_at: datetime
    idle_expires_at: datetime | None
    last_used_at: datetime | None = Field(
        description="When it was last used (to the minute); null until its first use."
    )
    current: bool = Field(description="The token this request was made with.")


class MeOut(Output):
    username: str
    display_name: str
    role: Role
    emails: list[EmailOut]
    phones: list[PhoneOut]
    factors: list[FactorOut]
    two_factor: TwoFactorStateOut
    token: TokenOut
    reauthenticated_until: datetime | None
    second_factor_until: datetime | None = Field(
        description="Until when this token may change the second step (POST /api/v1/me/step-up proves a factor)."
    )


class FactorConfirmedOut(FactorOut):
    recovery_codes: list[str] | None = Field(
        description="With the first factor: the user's recovery codes, shown this once. null otherwise."
    )


class RecoveryStatusOut(Output):
    exists: bool
    remaining: int
    total: int
    created_at: datetime | None
    last_used_at: datetime | None


class RecoveryCodesOut(Output):
    codes: list[str] = Field(description="Shown once; each works once. Earlier codes no longer work.")
    created_at: datetime


class ReauthenticateIn(Input):
    password: Password


class ReauthenticatedOut(Output):
    reauthenticated_until: datetime


# --- step-up: a code of a factor before a change to the second step ---------------


class StepUpIn(Input):
    method: MethodName | None = Field(
        default=None, description="Confirm with this of your methods (default: your default method)."
    )


class StepUpOut(Output):
    step_up_token: str = Field(
        description="Send with the code to /api/v1/me/step-up/verify, with the access token that began it "
        "(no other may answer it); the proof goes to that token. Shown once: hold it like a password."
    )
    method: str = Field(description="The method asked for.")
    methods: list[str] = Field(description="Every method that can confirm; /api/v1/me/step-up/method switches.")
    prompt: str = Field(
        description="What to tell the user: where the code went, or, when none could be sent, why "
        "(then `/me/step-up/resend` tries again, or `/me/step-up/method` picks another method)."
    )
    code_sent: bool | None = Field(
        description="For methods that send a code (email, SMS): whether one is on its way. "
        "null for an authenticator app."
    )
    expires_at: datetime


#: Exactly one of them, never null.
_ONE_CODE = ("code", "recovery_code")


class StepUpVerifyIn(Input):
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["code"]}, {"required": ["recovery_code"]}]},
    )

    step_up_token: LoginToken
    #: Checked by the service (exactly six digits); a malformed code is refused like a wrong one, not counted
    #: against the account (it uses one of the sign-in's own tries).
    code: CodeText | SkipJsonSchema[None] = Field(default=None, description="A code of the method asked for.")
    recovery_code: RecoveryCodeText | SkipJsonSchema[None] = Field(
        default=None, description="Or one of your recovery codes (each works once)."
    )

    @model_validator(mode="after")
    def _one_code(self) -> StepUpVerifyIn:
        given = [name for name in _ONE_CODE if name in self.model_fields_set]
        if len(given) != 1 or getattr(self, given[0]) is None:
            raise ValueError("send either `code` or `recovery_code`")
        return self


class StepUpTokenIn(Input):
    step_up_token: LoginToken


class StepUpMethodIn(Input):
    step_up_token: LoginToken
    method: MethodName


class SecondFactorProvedOut(Output):
    second_factor_until: datetime = Field(
        description="This token may change the second step until then (with a recent password)."
    )
    recovery_codes_left: int | None = Field(
        default=None, description="After a recovery code: how many unused codes remain."
    )


class TotpProvisioningOut(Output):
    secret: str = Field(description="Base32 key for manual entry.")
    uri: str = Field(description="otpauth:// URI with issuer.")
    qr_svg: str = Field(description="The URI as an SVG QR code.")
    expires_at: datetime = Field(description="Confirm before this, or start again.")


class CodeIn(Input):
    code: CodeText


class EmailFactorIn(Input):
    email_id: Integer = Field(
        ge=1,
        le=MAX_ID,
        description="One of your addresses, by its id in GET /api/v1/me/factors/setup "
        "(which answers while you must enrol; GET /api/v1/me does not).",
    )


class PhoneFactorIn(Input):
    phone_id: Integer = Field(
        ge=1,
        le=MAX_ID,
        description="One of your phone numbers, by its id in GET /api/v1/me/factors/setup "
        "(which answers while you must enrol; GET /api/v1/me does not).",
    )


class FactorSetupOut(Output):
    allowed_methods: list[str] = Field(description="The methods the administrator allows.")
    emails: list[EmailOut] = Field(description="Addresses to pick for email codes or the email check (`email_id`).")
    phones: list[PhoneOut] = Field(description="Numbers to pick for SMS codes (`phone_id`).")
    email_check_required: bool = Field(
        description="This token must pass the email check (POST /api/v1/me/factors/email-check) "
        "before setting up an authenticator app or SMS codes."
    )


class CodeSentOut(Output):
    method: Literal["email", "sms"]
    destination: str = Field(description="The address or number the confirmation code was sent to.")
    expires_at: datetime = Field(description="Confirm before this, or start again.")
    resend_after: int = Field(description="Seconds before another code may be asked for (start again to resend).")
    problem: str = Field(
        "",
        description='What to tell the user when the code may not have arrived ("" when all is well): an SMS '
        "provider that did not confirm the message. The code stays valid if it arrives.",
    )


class EmailCheckSentOut(Output):
    destination: str = Field(description="The address the code was sent to.")
    resend_after: int = Field(description="Seconds before another code may be asked for (send again to resend).")


class EmailCheckPassedOut(Output):
    passed_until: datetime = Field(
        description="Set up an authenticator app or SMS codes with this token before this time."
    )


class TokenCreateIn(Input):
    name: TokenName
    scopes: list[ScopeName] = Field(min_length=1, max_length=3)
    expires_in_days: Integer = Field(default=30, ge=1, le=365)


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The secret. Shown once: store it now.")


# --- administration --------------------------------------------------------------


class UserSummaryOut(Output):
    username: str
    display_name: str
    role: Role
    is_active: bool
    two_factor: bool = Field(description="Has at least one confirmed second factor.")
    locked: bool = Field(description="The second step is locked after too many wrong codes.")
    created_at: datetime


class UserPageOut(Output):
    items: list[UserSummaryOut]
    total: int
    page: int
    page_size: int


class UserDetailOut(UserSummaryOut):
    must_change_password: bool
    emails: list[EmailOut]
    phones: list[PhoneOut]
    factors: list[FactorOut]
    second_step_failures: int
    second_step_locked_at: datetime | None


class UserCreatedOut(UserDetailOut):
    emails: list[EmailAddedOut]  # type: ignore[assignment]  # each with ``also_on``
    phones: list[PhoneAddedOut]  # type: ignore[assignment]


class UserCreateIn(Input):
    username: Username
    password: Password | None = Field(default=None, description="Omit for an account with no usable password yet.")
    must_change_password: bool = Field(default=True, description="The user must choose their own at sign-in.")
    display_name: DisplayName = ""
    role: Role = "user"
    emails: list[EmailText] = Field(default_factory=list, max_length=20)
    phones: list[PhoneText] = Field(default_factory=list, max_length=20)


class UserUpdateIn(Input):
    display_name: DisplayName | None = None
    role: Role | None = None
    is_active: bool | None = None


class SetPasswordIn(Input):
    password: Password
    must_change_password: bool = True


class EmailIn(Input):
    email: EmailText
    primary: bool = False


class PhoneIn(Input):
    phone: PhoneText
    primary: bool = False


class ResetOut(Output):
    removed: int = Field(description="Confirmed factors removed.")


class RevokedOut(Output):
    revoked: int


class SettingOut(Output):
    key: str
    value: Any = Field(description="null for a secret setting (see `secret`).")
    default: Any
    secret: bool = Field(description="The value is stored encrypted and never returned.")
    help: str


class SettingsOut(Output):
    settings: list[SettingOut]
    forced_off_by_config: bool = Field(description="The config file switched 2FA off for everyone, whatever is stored.")
    warnings: list[str] = Field(
        description="What the stored settings leave weak, e.g. allowed methods without authenticator apps "
        "(SMS and email codes only). Empty when nothing is flagged."
    )


SettingText = Annotated[str, StringConstraints(max_length=1000, pattern=NO_CONTROL)]
#: What a runtime setting can hold: a switch, a number, a text or a list of texts.
SettingValue = (
    bool
    | Annotated[int, Ge(-(2**53)), Le(2**53), BeforeValidator(_integral)]
    | SettingText
    | Annotated[list[SettingText], MaxLen(50)]
)


def _setting_names(schema: dict[str, Any]) -> None:
    # pydantic describes constrained keys with patternProperties, which does
    # not forbid other keys; propertyNames says what the API really accepts.
    for value_schema in schema.pop("patternProperties", {}).values():
        schema["additionalProperties"] = value_schema
    schema["propertyNames"] = {"minLength": 1, "maxLength": 100, "pattern": SETTING_KEY_PATTERN}


class SettingsIn(Input):
    values: dict[SettingKey, SettingValue] = Field(min_length=1, max_length=20, json_schema_extra=_setting_names)
    confirm_affected: Integer = Field(
        default=0,
        ge=0,
        le=2**31 - 1,
        description="When a 2FA change would stop protecting some users: their number, from the previous answer.",
    )


class EventOut(Output):
    id: int
    created_at: datetime
    kind: str
    outcome: Literal["success", "failure", "info"]
    reason: str
    username: str
    actor: str | None
    ip: str | None
    user_agent: str
    method: str
    detail: dict[str, Any]


class EventPageOut(Output):
    items: list[EventOut]
    total: int
    page: int
    page_size: int
