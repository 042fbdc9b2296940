from typing import Any

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "twostep.accounts"
    label = "accounts"
    verbose_name = "Users"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        # Django's own receiver saves the user through the ORM; this one is a
        # single hand-written UPDATE (it runs on every sign-in).
        user_logged_in.disconnect(dispatch_uid="update_last_login")
        user_logged_in.connect(_record_last_login, dispatch_uid="twostep_last_login")


def _record_last_login(sender: Any, user: Any, **kwargs: Any) -> None:
    from twostep.accounts.services import record_last_login

    record_last_login(user)
