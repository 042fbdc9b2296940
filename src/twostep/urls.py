from django.urls import include, path
from django.views.generic import RedirectView

from twostep.accounts import views as accounts
from twostep.core import views as core
from twostep.forwardauth import views as forwardauth
from twostep.mail import views as mail
from twostep.mfa import choice_views as mfa_choice
from twostep.mfa import compliance_views as compliance
from twostep.mfa import email_check_views as email_check
from twostep.mfa import enforcement_views as enforcement
from twostep.mfa import views as mfa
from twostep.mfa.email import views as email_codes
from twostep.mfa.recovery_codes import views as recovery_codes
from twostep.mfa.sms import admin_views as sms_admin
from twostep.mfa.sms import views as sms
from twostep.mfa.totp import views as totp
from twostep.mfa.trusted import views as trusted_browsers
from twostep.usersessions import views as sessions

urlpatterns = [
    path("", RedirectView.as_view(url="/account", permanent=False)),
    path("healthz", core.healthz),
    path("login", accounts.login_view),
    path("login/verify", mfa.verify_view),
    path("logout", accounts.logout_view),
    path("account", accounts.account_view),
    path("account/password", accounts.change_password_view),
    path("account/reauthenticate", accounts.reauthenticate_view),
    path("account/security", mfa.security_view),
    path("account/security/totp", totp.totp_setup_view),
    path("account/security/totp/remove", totp.totp_remove_view),
    path("account/security/email", email_codes.email_setup_view),
    path("account/security/email/remove", email_codes.email_remove_view),
    path("login/verify/email/resend", email_codes.login_resend_view),
    path("admin/email", mail.email_settings_view),
    path("account/security/sms", sms.sms_setup_view),
    path("account/security/sms/remove", sms.sms_remove_view),
    path("login/verify/sms/resend", sms.sms_resend_view),
    path("admin/sms", sms_admin.sms_admin_view),
    path("account/sessions/end", sessions.end_session_view),
    path("account/sessions/end-others", sessions.end_other_sessions_view),
    # Recovery and choice (issue 8).
    path("login/verify/method", mfa_choice.switch_view),
    path("login/recovery", recovery_codes.login_recovery_view),
    path("account/security/enrol", enforcement.enrol_view),
    path("account/security/enrol/email-check", email_check.email_check_view),
    path("account/security/methods/default", mfa_choice.set_default_view),
    path("account/security/methods/rename", mfa_choice.rename_view),
    path("account/security/recovery-codes", recovery_codes.regenerate_view),
    path("account/security/trusted/revoke", trusted_browsers.revoke_view),
    path("account/security/trusted/revoke-all", trusted_browsers.revoke_all_view),
    path("admin/two-factor", compliance.two_factor_view),
    path("admin/", include("twostep.console.urls")),
    path("api/v1/", include("twostep.api.urls")),
    path("account/", include("twostep.api.pages")),
    path("auth/request", forwardauth.auth_request_view),
    path("auth/forward", forwardauth.forward_auth_view),
]

handler400 = "twostep.core.views.bad_request"
