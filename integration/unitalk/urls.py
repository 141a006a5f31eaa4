"""Routes of the Unitalk side: the webhook intake."""

from django.urls import path

from integration.unitalk import webhooks

urlpatterns = [
    path("webhook/<str:secret>/", webhooks.unitalk_webhook, name="unitalk-webhook"),
]
