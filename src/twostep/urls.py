from django.urls import include, path
from django.views.generic import RedirectView

from twostep.accounts import views as accounts
from twostep.core import views as core
from twostep.forwardauth import views as forwardauth
from twostep.mfa import views as mfa
from twostep.mfa.totp import views as totp
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
    path("account/sessions/end", sessions.end_session_view),
    path("account/sessions/end-others", sessions.end_other_sessions_view),
    path("admin/", include("twostep.console.urls")),
    path("api/v1/", include("twostep.api.urls")),
    path("account/", include("twostep.api.pages")),
    path("auth/verify", forwardauth.verify_view),
]
