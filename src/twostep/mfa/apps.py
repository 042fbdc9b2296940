from django.apps import AppConfig


class MFAConfig(AppConfig):
    name = "twostep.mfa"
    label = "mfa"
    verbose_name = "Two-factor authentication"

    def ready(self) -> None:
        # Registers the method handlers with twostep.mfa.methods.
        from twostep.core.keyring import register_encrypted_field
        from twostep.mfa.totp import flows, views  # noqa: F401

        register_encrypted_field("mfa.Authenticator", "secret")
