"""Routes of agent status actions (page token), under /bitrix/actions/agents/."""

from django.urls import path

from integration.agents import views

urlpatterns = [
    path("", views.agents_list, name="agents-list"),
    path("me/", views.agent_me, name="agents-me"),
    path("settings/", views.sync_settings_save, name="agents-settings"),
    path("<str:agent_id>/toggle/", views.agent_toggle, name="agents-toggle"),
    path("<str:agent_id>/retry/", views.agent_retry, name="agents-retry"),
]
