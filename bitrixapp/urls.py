from django.urls import include, path

from bitrixapp.views import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("bitrix/", include("bitrixapp.views.urls")),
    path("unitalk/", include("integration.unitalk.urls")),
    path("bitrix/actions/campaigns/", include("integration.campaigns.urls")),
]
