from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "integration.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Registers the agent job kinds and the call-event listener in every process at start-up.
        from integration.agents import handlers  # noqa: F401
