from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "twostep.notifications"
    label = "notifications"
    verbose_name = "Security notifications"
