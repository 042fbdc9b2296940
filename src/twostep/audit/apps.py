from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "twostep.audit"
    label = "audit"
    verbose_name = "Auth log"
