"""The app's pages inside Bitrix24: overview, failed-call lists, settings, CRM tab, call card.

Every page is opened with a form POST that `auth.frame_entry` authenticates (AUTH_ID checked on
the portal's REST, page token issued, framing allowed for that portal only). Moving between
pages re-posts the same entry fields to the next page (the check is cached briefly), so each
page is a real, separately addressable document. Data changes go through `actions.py` with the
page token in the X-App-Token header.

The language is the LANG Bitrix24 sends (query string or body), falling back to the portal's.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from bitrixapp import auth, selectors, services
from bitrixapp.models import Portal
from bitrixapp.views import charts
from integration.bitrix import users as bitrix_users
from integration.calls import live as calls_live
from integration.calls.models import FailedCall
from integration.campaigns import selectors as campaign_selectors
from integration.core import inputs
from integration.unitalk import selectors as unitalk_selectors

#: Entry fields re-posted when moving to another page (AUTH_ID proves the user again).
ENTRY_FIELDS = ("member_id", "AUTH_ID", "AUTH_EXPIRES", "LANG")


def _lang(request: HttpRequest, portal: Portal) -> str:
    raw = request.GET.get("LANG") or request.POST.get("LANG")
    return auth.page_lang(raw, fallback=portal.lang)


def js_strings() -> dict[str, Any]:
    """Strings the page scripts show, translated on the server (no catalog in the browser)."""
    return {
        "saved": _("Saved."),
        "failed": _("Something went wrong. Try again."),
        "retrying": _("Retrying…"),
        "resolved": _("Resolved"),
        "retry": _("Retry now"),
        "resolve": _("Resolve"),
        "call_back": _("Call back"),
        "none": _("Nothing here. Well done."),
        "page": _("Page"),
        "of": _("of"),
        "testing": _("Checking the key with Unitalk…"),
        "test_ok_n": _("Unitalk answered: the key works. Operators found: %(n)s."),
        "test_problem": {
            "credentials_invalid": _(
                "Unitalk did not accept this key. Copy it again from your Unitalk account "
                "(Settings → API) and save it."
            ),
            "unreachable": _(
                "Unitalk could not be reached. The key is kept; try again in a few minutes."
            ),
            "": _("The check did not finish. Try again in a moment."),
        },
        "syncing": _("Matching users and lines…"),
        "synced": _("Matching finished."),
        "sync_failed": _("Matching did not finish. Check the Unitalk key, then try again."),
        "fix_fields": _("Nothing was saved: correct the fields marked in red."),
        "removed": _("Removed."),
        "details": _("Details"),
        "headers": {
            "when": _("When"),
            "number": _("Number"),
            "user": _("User"),
            "reason": _("Reason"),
            "state": _("State"),
            "actions": _("Actions"),
        },
        "copied": _("Copied."),
        "no_call": _("This call is not known to the app yet."),
        "open": _("open"),
        "retrying_state": _("retrying"),
        "resolved_state": _("resolved"),
        "dial_failed": _("Call not placed"),
        "missed": _("Missed call"),
        "crm_sync_failed": _("CRM not updated"),
        "saving": _("Saving…"),
        "retry_sync": _("Retry sync"),
        "dial_dialing": _("Calling through Unitalk…"),
        "dial_retrying": _("Unitalk did not answer; trying again (attempt %(n)s, %(s)s s left)…"),
        "dial_dialled": _("Unitalk is ringing your phone."),
        "dial_failed_note": _("The call was not placed:"),
        "dial_again": _("Dialling again…"),
        "stages": stage_labels(),
        "remove": _("Remove"),
        "user_id": _("user ID %(id)s"),
        "bulk_progress": _("%(done)s of %(total)s retried items settled"),
        "sync_steps": _("Step %(done)s of %(total)s:"),
        "sync_step": {
            "unitalk": _("reading Unitalk's users"),
            "bitrix": _("reading Bitrix24 users"),
            "match": _("matching lines"),
            "done": _("saving"),
        },
        "loading": _("Loading…"),
        "fix_filters": _("Correct the filters marked in red."),
    }


def stage_labels() -> dict[str, str]:
    """Where the call stands in Bitrix24, as people read it."""
    return {
        "new": _("not yet in Bitrix24"),
        "dialing": _("dialing"),
        "registered": _("in Bitrix24, in progress"),
        "finished": _("saved in Bitrix24"),
        "recorded": _("saved with recording"),
        "failed": _("not saved: see the problem"),
        "not_placed": _("closed in Bitrix24: the call was not placed"),
    }


def _render(
    request: HttpRequest, template: str, context: dict[str, Any], *, page: str, status: int = 200
) -> HttpResponse:
    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    lang = _lang(request, portal)
    if identity.is_admin:
        services.portal_lang_update(portal=portal, lang=lang)
    with translation.override(lang):
        base = {
            "identity": identity,
            "portal": portal,
            "page": page,
            "lang": lang,
            "page_token": request.bitrix_page_token,  # type: ignore[attr-defined]
            "bx24_js_url": settings.BITRIX24_JS_URL,
            "entry": {name: request.POST.get(name, "") for name in ENTRY_FIELDS} | {"LANG": lang},
            **banners_context(identity=identity, portal=portal, page=page),
            "js_strings": js_strings(),
            "poll_ms": settings.PAGES_CALL_CARD_POLL_MS,
        }
        return render(request, template, base | context, status=status)


def banners_context(*, identity: auth.PageIdentity, portal: Portal, page: str) -> dict[str, Any]:
    """Counts and banners for a page (under the page's language).

    Inside the narrow CRM tab only the viewer's own problems are shown: portal-wide ones are
    for the app's pages, where the admin can act on them.
    """
    is_admin = identity.is_admin and page not in ("crm", "call_card")
    return selectors.overview_get(portal=portal, user_id=identity.user_id, is_admin=is_admin)


@auth.frame_entry
def app_page(request: HttpRequest) -> HttpResponse:
    """Overview: what is not set up yet, open failed-call counts, problem banners, presence."""
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    bitrix_users.users_refresh_enqueue(portal=portal)  # names of who is on a call (a job)
    context = {
        "setup": selectors.setup_steps(portal=portal),
        "live_calls": calls_live.calls_live(portal=portal),
        "live_poll_ms": settings.PAGES_LIVE_POLL_MS,
        **_presence(request),
    }
    with translation.override(_lang(request, portal)):
        context["charts"] = charts.charts_context(portal=portal)
    return _render(request, "pages/overview.html", context, page="overview")


@auth.frame_entry
def history_page(request: HttpRequest) -> HttpResponse:
    """Call history: every call, filtered and paged by calls/views.py (`calls/history/`)."""
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    bitrix_users.users_refresh_enqueue(portal=portal)  # names for the picker and rows
    return _render(request, "pages/history.html", {}, page="history")


def _presence(request: HttpRequest) -> dict[str, Any]:
    """The user's own status and the portal's presence counts (overview, call card)."""
    from integration.agents import selectors as agent_selectors

    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    with translation.override(_lang(request, portal)):
        me = agent_selectors.agent_for_user(portal=portal, user_id=identity.user_id)
        return {
            "me": agent_selectors.agent_dict(me) if me else None,
            "my_line": _my_line(portal, identity.user_id, me),
            "presence": agent_selectors.presence_summary(portal=portal),
        }


def _my_line(portal: Portal, user_id: int, me: Any) -> str:
    """A mapped user whose presence is not computed yet (the roster is read by the next poll,
    docs/agents.md) has a line all the same: the page must not say "no Unitalk line"."""
    if me is not None:
        return ""
    return unitalk_selectors.operator_line_for_user(portal, user_id) or ""


@auth.frame_entry
def agents_page(request: HttpRequest) -> HttpResponse:
    """Agents panel: who can take calls now and why not; the user's own toggle on top."""
    from integration.agents import selectors as agent_selectors

    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    with translation.override(_lang(request, portal)):
        me = agent_selectors.agent_for_user(portal=portal, user_id=identity.user_id)
        context = {
            "agents": agent_selectors.agent_rows(portal=portal),
            "me": agent_selectors.agent_dict(me) if me else None,
            "my_line": _my_line(portal, identity.user_id, me),
            "sync": agent_selectors.sync_settings(portal=portal),
        }
    return _render(request, "pages/agents.html", context, page="agents")


@auth.frame_entry
def routing_page(request: HttpRequest) -> HttpResponse:
    """Fallback routing: calls handed to me (one-click dial), rerouted calls with their path,
    and for admins the chain (integration/routing/selectors.py, docs/routing.md)."""
    from integration.routing import selectors as routing_selectors

    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    with translation.override(_lang(request, portal)):
        context = {
            "mine": routing_selectors.reroutes_recent(portal=portal, user_id=identity.user_id),
            "reroutes": routing_selectors.reroutes_recent(portal=portal),
            "policy": routing_selectors.policy_dict(portal=portal),
            "lines": routing_selectors.lines_list(portal=portal),
            "user_chains": routing_selectors.override_rows(portal=portal),
        }
    return _render(request, "pages/routing.html", context, page="routing")


@auth.frame_entry
def failed_page(request: HttpRequest) -> HttpResponse:
    """Missed calls (their own list: people to call back) or failed calls (work to retry:
    not placed, CRM not updated); the table is filled by actions.failed_list."""
    kind = request.POST.get("kind", "")
    kind = kind if kind in FailedCall.Kind.values else FailedCall.Kind.DIAL_FAILED
    labels = _kind_labels()
    shown = [kind] if kind == FailedCall.Kind.MISSED else list(labels)[1:]
    return _render(
        request,
        "pages/failed.html",
        {"kind": kind, "kinds": [(value, labels[value]) for value in shown]},
        page="missed" if kind == FailedCall.Kind.MISSED else "failed",
    )


@auth.frame_entry
def campaigns_page(request: HttpRequest) -> HttpResponse:
    """Campaigns: the list, or one campaign's progress, outcomes, agents and items (POST field
    `campaign`, filter `state`, `page`); start/pause/stop go through campaigns/views.py."""
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    number = inputs.parse_int_or_none(
        request.POST.get("campaign"), field="campaign", minimum=1, maximum=inputs.INT64_MAX
    )
    campaign = (
        campaign_selectors.campaign_get(portal=portal, campaign_id=number) if number else None
    )
    # Stored reasons are shown in the page's language (campaigns/reasons.py).
    with translation.override(_lang(request, portal)):
        if campaign is None:
            context = {"campaigns": campaign_selectors.campaigns_list(portal=portal)}
            return _render(request, "pages/campaigns.html", context, page="campaigns")
        page = inputs.parse_int_or_none(request.POST.get("page"), field="page", minimum=1) or 1
        detail = campaign_selectors.campaign_detail(
            campaign=campaign, state=request.POST.get("state", "")[:16], page=page
        )
    return _render(request, "pages/campaign.html", detail, page="campaigns")


def _kind_labels() -> dict[str, Any]:
    return {
        FailedCall.Kind.MISSED: gettext_lazy("Missed calls"),
        FailedCall.Kind.DIAL_FAILED: gettext_lazy("Calls not placed"),
        FailedCall.Kind.CRM_SYNC_FAILED: gettext_lazy("CRM not updated"),
    }


@auth.frame_entry
def settings_page(request: HttpRequest) -> HttpResponse:
    """Settings, for portal admins only (ADMIN from the portal, recorded in the page token)."""
    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    if not identity.is_admin:
        return _render(request, "pages/forbidden.html", {}, page="settings", status=403)
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    bitrix_users.users_refresh_enqueue(portal=portal)
    people = bitrix_users.people_get(portal=portal)
    options = selectors.settings_get(portal=portal)
    person = functools.partial(bitrix_users.person_dict, people)
    for mapping in options["mappings"]:
        mapping.person = person(mapping.bitrix_user_id)
    default_user = options["options"].default_user_id
    context = options | {
        "health": unitalk_selectors.health_get(portal=portal),
        "people": people,
        "default_people": [person(default_user)] if default_user else [],
        "notify_people": [person(uid) for uid in options["options"].notify_user_ids or []],
        "card_modes": _card_modes(),
        "owner_rules": _owner_rules(),
    }
    return _render(request, "pages/settings.html", context, page="settings")


def _card_modes() -> list[tuple[str, Any]]:
    return [
        ("ring", gettext_lazy("when the phone rings")),
        ("answer", gettext_lazy("when the call is answered")),
        ("never", gettext_lazy("never")),
    ]


def _owner_rules() -> list[tuple[str, Any]]:
    return [
        (
            "crm",
            gettext_lazy(
                "the CRM record's responsible, then the last user who rang, then the default"
            ),
        ),
        ("last_user", gettext_lazy("the last user who rang, then the default user")),
        ("default", gettext_lazy("always the default user")),
    ]


@auth.frame_entry
def placement(request: HttpRequest) -> HttpResponse:
    """Placements: CRM detail tabs list the entity's calls; CALL_CARD shows the live call."""
    code = request.POST.get("PLACEMENT", "")[:64]
    raw_options = request.POST.get("PLACEMENT_OPTIONS") or ""
    options = (
        inputs.parse_json(raw_options, field="PLACEMENT_OPTIONS") if raw_options.strip() else {}
    )
    options = options if isinstance(options, dict) else {}
    context: dict[str, Any] = {"placement": code, "options": options}
    portal: Portal = request.bitrix_portal  # type: ignore[attr-defined]
    if code.startswith("CRM_") and code.endswith("_DETAIL_TAB"):
        entity_type = code.removeprefix("CRM_").removesuffix("_DETAIL_TAB")
        entity_id = inputs.parse_int_or_none(options.get("ID"), field="PLACEMENT_OPTIONS.ID") or 0
        bitrix_users.users_refresh_enqueue(portal=portal)  # employee names (a job, 1 per 5 min)
        with translation.override(_lang(request, portal)):
            calls = selectors.crm_calls_list(
                portal=portal, entity_type=entity_type, entity_id=entity_id
            )
            labels = stage_labels()
        people = bitrix_users.people_get(portal=portal)
        for call in calls:
            call["stage_label"] = labels.get(call["stage"], call["stage"])
            call["user_person"] = bitrix_users.person_dict(people, call["user"])
            resolver = bitrix_users.person_dict(people, call["resolved_by"])
            call["resolved_by_name"] = resolver["name"] if resolver["known"] else ""
        context |= {"entity_type": entity_type, "entity_id": entity_id or "", "calls": calls}
        return _render(request, "pages/crm_tab.html", context, page="crm")
    if code == "CALL_CARD":
        call_id = str(options.get("CALL_ID") or "")[:128]
        card = selectors.call_card_get(portal=portal, bitrix_call_id=call_id)
        if card is not None:
            with translation.override(_lang(request, portal)):
                card["stage_label"] = stage_labels().get(card["stage"], card["stage"])
        context |= {"call_id": call_id, "call": card} | _presence(request)
        return _render(request, "pages/call_card.html", context, page="call_card")
    return _render(request, "pages/overview.html", context, page="overview")
