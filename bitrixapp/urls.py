from django.urls import include, path

from bitrixapp.views import health, metrics
from integration.campaigns import views as campaign_views
from integration.unitalk import urls as unitalk_urls

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("bitrix/actions/agents/", include("integration.agents.urls")),
    path("bitrix/actions/", include(unitalk_urls.actions_urlpatterns)),
    path("bitrix/actions/calls/", include("integration.calls.urls")),
    path("bitrix/", include("bitrixapp.views.urls")),
    path("unitalk/", include("integration.unitalk.urls")),
    path("bitrix/actions/campaigns/", include("integration.campaigns.urls")),
    path("bitrix/actions/routing/", include("integration.routing.urls")),
    # The "Add to campaign" robot's HANDLER (integration/bitrix/binding.py robot_url).
    path(
        "bitrix/robots/add-to-campaign/",
        campaign_views.robot_add_to_campaign,
        name="robot-campaign",
    ),
]
