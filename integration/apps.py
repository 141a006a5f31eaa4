from django.apps import AppConfig


class IntegrationConfig(AppConfig):
    name = "integration"
    verbose_name = "Unitalk and Bitrix24 integration"

    def ready(self) -> None:
        # Importing the notifications flow table registers delivery jobs and the dead-job problem.
        from integration.notifications import flow  # noqa: F401
