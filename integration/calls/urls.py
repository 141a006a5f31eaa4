"""Routes of the call pages' actions (page token), under /bitrix/actions/calls/."""

from django.urls import path

from integration.calls import views

urlpatterns = [
    path("live/", views.calls_live, name="calls-live"),
    path("history/", views.calls_history, name="calls-history"),
    path("history.csv", views.calls_history_csv, name="calls-history-csv"),
]
