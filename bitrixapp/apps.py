from django.apps import AppConfig


class BitrixAppConfig(AppConfig):
    name = "bitrixapp"
    verbose_name = "Bitrix24 app shell"

    def ready(self) -> None:
        # Importing the flow table registers the shell's job kinds: workers know them at start-up.
        from bitrixapp import flow  # noqa: F401
