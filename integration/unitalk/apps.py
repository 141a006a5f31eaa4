from django.apps import AppConfig


class UnitalkConfig(AppConfig):
    name = "integration.unitalk"
    label = "unitalk"
    verbose_name = "Unitalk"

    def ready(self) -> None:
        # Importing the flow table registers Unitalk's job kinds, and the webhook events are an
        # inbox the dispatcher feeds from; workers must know both at start-up.
        from integration import jobs
        from integration.unitalk import flow, intake  # noqa: F401

        jobs.register_inbox(intake.inbox_feed)
