from django.urls import path

from bitrixapp.views import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
]
