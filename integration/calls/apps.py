from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "integration.calls"
    label = "calls"
    verbose_name = "Calls"

    def ready(self) -> None:
        # Importing the flow table registers the pipeline's job kinds and what follows a job,
        # so every worker process knows them at start-up.
        from integration.calls import flow  # noqa: F401
