from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "twostep.api"
    label = "api"
    verbose_name = "JSON API"

    def ready(self) -> None:
        # Access tokens end whenever the user's sessions end (password change,
        # deactivation, 2FA reset, new factor): see tokens.end_tokens_with_sessions.
        from twostep.api import tokens
        from twostep.usersessions.services import sessions_ended

        sessions_ended.connect(tokens.end_tokens_with_sessions, dispatch_uid="twostep.api.tokens")
