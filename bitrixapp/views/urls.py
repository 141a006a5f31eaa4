"""Routes Bitrix24 calls: install, the app page, placements, events."""

from django.urls import path

from bitrixapp.views import events, install, pages

urlpatterns = [
    path("install/", install.install, name="bitrix-install"),
    path("install/status/", install.install_status, name="bitrix-install-status"),
    path("app/", pages.app_page, name="bitrix-app"),
    path("placement/", pages.placement, name="bitrix-placement"),
    path("events/", events.events, name="bitrix-events"),
]
