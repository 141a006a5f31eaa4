"""Routes Unitalk calls: the webhook intake."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
