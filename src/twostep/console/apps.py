from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "twostep.console"
    label = "console"
    verbose_name = "Admin console"
