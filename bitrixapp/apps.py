from django.apps import AppConfig


class BitrixAppConfig(AppConfig):
    name = "bitrixapp"
    verbose_name = "Bitrix24 app shell"

    def ready(self) -> None:
        # Job handlers register themselves on import; workers must know them at start-up.
        from integration.bitrix import handlers  # noqa: F401
