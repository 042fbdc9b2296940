from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "twostep.core"
    label = "core"
    verbose_name = "twostep core"
