from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "integration.calls"
    label = "calls"
    verbose_name = "Calls"
