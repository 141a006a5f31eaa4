"""Routes of the routing page's JSON actions (mounted under bitrix/actions/routing/)."""

from django.urls import path

from integration.routing import views

urlpatterns = [
    path("policy/", views.policy_save, name="routing-act-policy"),
    path("overrides/", views.override_save, name="routing-act-override"),
    path("overrides/<str:user_id>/delete/", views.override_delete, name="routing-act-override-del"),
    path("reroutes/<str:reroute_id>/dial/", views.reroute_dial, name="routing-act-dial"),
]
