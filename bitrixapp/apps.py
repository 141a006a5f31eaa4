from django.apps import AppConfig


class BitrixAppConfig(AppConfig):
    name = "bitrixapp"
    verbose_name = "Bitrix24 app shell"
