from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "integration.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        # Importing the flow table registers the autodialer's job kinds and the hooks that feed
        # call outcomes back into campaigns (docs/pipeline.md).
        from integration.campaigns import flow  # noqa: F401
