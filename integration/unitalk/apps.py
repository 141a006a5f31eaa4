from django.apps import AppConfig


class UnitalkConfig(AppConfig):
    name = "integration.unitalk"
    label = "unitalk"
    verbose_name = "Unitalk"

    def ready(self) -> None:
        # Job handlers register themselves on import; workers must know them at start-up.
        from integration.unitalk import handlers  # noqa: F401
