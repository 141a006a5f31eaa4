"""Routes Bitrix24 calls: install, the app page, placements, events."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
