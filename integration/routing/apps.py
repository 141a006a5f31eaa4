from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "integration.routing"
    label = "routing"
    verbose_name = "Fallback routing"

    def ready(self) -> None:
        # Importing the flow table registers the reroute jobs and the hooks the call pipeline
        # asks when a click-to-call cannot reach the client (docs/routing.md).
        from integration.routing import flow  # noqa: F401
