"""Routes Bitrix24 calls: install, the app pages, placements, events, and the pages' actions."""

from django.urls import path

from bitrixapp.views import actions, events, install, pages

urlpatterns = [
    path("install/", install.install, name="bitrix-install"),
    path("install/status/", install.install_status, name="bitrix-install-status"),
    path("app/", pages.app_page, name="bitrix-app"),
    path("app/failed/", pages.failed_page, name="bitrix-app-failed"),
    path("app/settings/", pages.settings_page, name="bitrix-app-settings"),
    path("placement/", pages.placement, name="bitrix-placement"),
    path("events/", events.events, name="bitrix-events"),
    # JSON actions from the pages (X-App-Token)
    path("actions/overview/", actions.overview, name="bitrix-act-overview"),
    path("actions/failed/", actions.failed_list, name="bitrix-act-failed"),
    path("actions/failed/retry/", actions.failed_retry_bulk, name="bitrix-act-failed-bulk"),
    path("actions/failed/<int:item_id>/retry/", actions.failed_retry, name="bitrix-act-retry"),
    path(
        "actions/failed/<int:item_id>/resolve/", actions.failed_resolve, name="bitrix-act-resolve"
    ),
    path("actions/settings/", actions.settings_save, name="bitrix-act-settings"),
    path("actions/settings/key/", actions.settings_key, name="bitrix-act-key"),
    path("actions/settings/test/", actions.settings_test, name="bitrix-act-test"),
    path("actions/operators/sync/", actions.operators_sync, name="bitrix-act-operators-sync"),
    path("actions/operators/", actions.operator_map, name="bitrix-act-operator-map"),
    path("actions/operators/rows/", actions.operator_rows, name="bitrix-act-operator-rows"),
    path(
        "actions/problems/<int:notification_id>/dismiss/",
        actions.problem_dismiss,
        name="bitrix-act-dismiss",
    ),
    path("actions/jobs/<int:job_id>/", actions.job_status, name="bitrix-act-job"),
    path("actions/call-card/", actions.call_card, name="bitrix-act-call-card"),
    path("actions/crm-calls/", actions.crm_calls, name="bitrix-act-crm-calls"),
]
