"""Routes of the Unitalk side: the webhook intake (under /unitalk/) and the settings page's
Unitalk actions (`actions_urlpatterns`, under /bitrix/actions/, page token)."""

from django.urls import path

from integration.unitalk import views, webhooks

urlpatterns = [
    path("webhook/<str:secret>/", webhooks.unitalk_webhook, name="unitalk-webhook"),
]

actions_urlpatterns = [
    path("settings/key/", views.settings_key, name="bitrix-act-key"),
    path("settings/test/", views.settings_test, name="bitrix-act-test"),
    path("settings/status/", views.settings_status, name="bitrix-act-status"),
    path("operators/sync/", views.operators_sync, name="bitrix-act-operators-sync"),
    path("operators/", views.operator_map, name="bitrix-act-operator-map"),
    path("operators/rows/", views.operator_rows, name="bitrix-act-operator-rows"),
]
