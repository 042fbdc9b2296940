from django.apps import AppConfig


class MFAConfig(AppConfig):
    name = "twostep.mfa"
    label = "mfa"
    verbose_name = "Two-factor authentication"

    def ready(self) -> None:
        # Registers the method handlers with twostep.mfa.methods.
        from twostep.core.keyring import register_encrypted_field
        from twostep.mail.config import register as register_mail_settings
        from twostep.mfa.email import flows as email_flows  # noqa: F401
        from twostep.mfa.sms import flows as sms_flows  # noqa: F401
        from twostep.mfa.totp import flows, views  # noqa: F401
        from twostep.sms.service import register_settings as register_sms_settings

        register_sms_settings()
        register_mail_settings()

        register_encrypted_field("mfa.Authenticator", "secret")

        # Recovery and choice (issue 8): runtime settings, Security-page panels,
        # and ending trust, recovery codes and waiting sign-ins when a user's sessions are ended.
        from twostep.mfa import choice_views, email_check, enforcement, enforcement_views, services  # noqa: F401
        from twostep.mfa.recovery_codes import services as recovery_codes
        from twostep.mfa.recovery_codes import views as recovery_views  # noqa: F401
        from twostep.mfa.trusted import services as trusted
        from twostep.mfa.trusted import views as trusted_views  # noqa: F401
        from twostep.usersessions.services import sessions_ended

        enforcement.register_settings()
        email_check.register_settings()
        trusted.register_settings()
        sessions_ended.connect(trusted.on_sessions_ended, dispatch_uid="twostep.mfa.trusted")
        sessions_ended.connect(recovery_codes.on_sessions_ended, dispatch_uid="twostep.mfa.recovery_codes")
        sessions_ended.connect(services.end_pending_sign_ins, dispatch_uid="twostep.mfa.pending")
