from django.apps import AppConfig


class UserSessionsConfig(AppConfig):
    name = "twostep.usersessions"
    label = "usersessions"
    verbose_name = "Sessions"
