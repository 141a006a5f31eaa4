"""Routes of the campaign pages' JSON actions (mounted under bitrix/actions/campaigns/)."""

from django.urls import path

from integration.campaigns import views

urlpatterns = [
    path("", views.campaign_create, name="campaign-act-create"),
    path("<str:campaign_id>/csv/", views.campaign_csv, name="campaign-act-csv"),
    path("<str:campaign_id>/agent/<str:action>/", views.agent_pause, name="campaign-act-agent"),
    path("<str:campaign_id>/<str:action>/", views.campaign_action, name="campaign-act"),
]
