from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "integration.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Importing the flow table registers the agent job kinds and what follows other work,
        # so every worker process knows them at start-up.
        from integration.agents import flow  # noqa: F401
