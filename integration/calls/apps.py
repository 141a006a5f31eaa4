from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "integration.calls"
    label = "calls"
    verbose_name = "Calls"

    def ready(self) -> None:
        # Connects the failed-call items to job outcomes (signal receivers).
        from integration.calls import failed  # noqa: F401
