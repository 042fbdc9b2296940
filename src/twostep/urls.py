from django.urls import include, path
from django.views.generic import RedirectView

from twostep.accounts import views as accounts
from twostep.core import views as core
from twostep.mfa import views as mfa
from twostep.mfa.totp import views as totp

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
    path("admin/", include("twostep.console.urls")),
]
