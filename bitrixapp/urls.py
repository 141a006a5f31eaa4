from django.urls import include, path

from bitrixapp.views import health, metrics
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
]
