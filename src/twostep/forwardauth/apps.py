from django.apps import AppConfig


class ForwardAuthAppConfig(AppConfig):
    name = "twostep.forwardauth"
    label = "forwardauth"
    verbose_name = "Forward-auth for reverse proxies"
