from django.apps import AppConfig


class MFAConfig(AppConfig):
    name = "twostep.mfa"
    label = "mfa"
    verbose_name = "Two-factor authentication"

    def ready(self) -> None:
        # Registers the method handlers with twostep.mfa.methods.
        from twostep.core.keyring import register_encrypted_field
        from twostep.mfa.totp import flows, views  # noqa: F401
        from twostep.mfa.email import flows as email_flows, views as email_views  # noqa: F401
        from twostep.mail.config import register as register_mail_settings
        from twostep.mfa.sms import flows as sms_flows, views as sms_views  # noqa: F401
        from twostep.sms.service import register_settings as register_sms_settings

        register_sms_settings()
        register_mail_settings()

        register_encrypted_field("mfa.Authenticator", "secret")
