"""Routes Bitrix24 calls: install, the app pages, placements, events, and the pages' actions."""

from django.urls import path, register_converter

from bitrixapp.views import actions, events, install, pages


class Digits:
    """Row ids in URLs: ASCII digits, handed to the view as text so it can bound them
    (integration.core.inputs) and answer 400 naming the field instead of overflowing a lookup."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return str(value)


register_converter(Digits, "digits")

urlpatterns = [
    path("install/", install.install, name="bitrix-install"),
    path("install/status/", install.install_status, name="bitrix-install-status"),
    path("app/", pages.app_page, name="bitrix-app"),
    path("app/failed/", pages.failed_page, name="bitrix-app-failed"),
    path("app/history/", pages.history_page, name="bitrix-app-history"),
    path("app/agents/", pages.agents_page, name="bitrix-app-agents"),
    path("app/settings/", pages.settings_page, name="bitrix-app-settings"),
    path("app/campaigns/", pages.campaigns_page, name="bitrix-app-campaigns"),
    path("app/routing/", pages.routing_page, name="bitrix-app-routing"),
    path("placement/", pages.placement, name="bitrix-placement"),
    path("events/", events.events, name="bitrix-events"),
    # JSON actions from the pages (X-App-Token)
    path("actions/overview/", actions.overview, name="bitrix-act-overview"),
    path("actions/failed/", actions.failed_list, name="bitrix-act-failed"),
    path("actions/failed/retry/", actions.failed_retry_bulk, name="bitrix-act-failed-bulk"),
    path("actions/failed/<digits:item_id>/retry/", actions.failed_retry, name="bitrix-act-retry"),
    path(
        "actions/failed/<digits:item_id>/resolve/",
        actions.failed_resolve,
        name="bitrix-act-resolve",
    ),
    path("actions/settings/", actions.settings_save, name="bitrix-act-settings"),
    path(
        "actions/problems/<digits:notification_id>/dismiss/",
        actions.problem_dismiss,
        name="bitrix-act-dismiss",
    ),
    path("actions/jobs/<digits:job_id>/", actions.job_status, name="bitrix-act-job"),
    path("actions/call-card/", actions.call_card, name="bitrix-act-call-card"),
    path("actions/crm-calls/", actions.crm_calls, name="bitrix-act-crm-calls"),
]
