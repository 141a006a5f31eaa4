from django.urls import include, path

from bitrixapp.views import health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("bitrix/actions/agents/", include("integration.agents.urls")),
    path("bitrix/", include("bitrixapp.views.urls")),
    path("unitalk/", include("integration.unitalk.urls")),
    path("bitrix/actions/campaigns/", include("integration.campaigns.urls")),
    path("bitrix/actions/routing/", include("integration.routing.urls")),
]
