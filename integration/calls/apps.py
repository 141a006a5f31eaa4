from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "integration.calls"
    label = "calls"
    verbose_name = "Calls"

    def ready(self) -> None:
        # Connects the failed-call items to job outcomes (signal receivers) and registers the
        # pipeline's job kinds, so every worker process knows them at start-up.
        from integration.calls import failed, handlers  # noqa: F401
