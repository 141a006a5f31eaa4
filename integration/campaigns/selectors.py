"""Campaign reads for the managers' pages: progress, outcomes, agents, items (by the page's
portal only: another portal's campaign is simply not found)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.utils.translation import gettext as _

from integration.agents import selectors as agent_selectors
from integration.agents.models import AgentState
from integration.campaigns.models import Attempt, Campaign, CampaignAgent, CampaignItem
from integration.campaigns.reasons import reason_label

ITEMS_PAGE = 50


def campaign_get(*, portal: Any, campaign_id: int) -> Campaign | None:
    """`portal` is a Portal or its id. The system campaign of callbacks is not a campaign the
    pages show or act on (docs/campaigns.md "Callbacks"): not found."""
    return (
        Campaign.objects.filter(portal=portal, pk=campaign_id)
        .exclude(source=Campaign.Source.CALLBACKS)
        .first()
    )


def _progress(campaign: Campaign) -> dict[str, Any]:
    by_state = dict(
        CampaignItem.objects.filter(campaign=campaign)
        .values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    total = sum(by_state.values())
    done = sum(by_state.get(s, 0) for s in CampaignItem.FINAL)
    return {
        "total": total,
        "done": done,
        "percent": round(100 * done / total) if total else 0,
        "by_state": by_state,
    }


def campaigns_list(*, portal: Any) -> list[dict[str, Any]]:
    shown = Campaign.objects.filter(portal=portal).exclude(source=Campaign.Source.CALLBACKS)
    return [{"campaign": c, **_progress(c)} for c in shown[:100]]


def campaign_detail(*, campaign: Campaign, state: str = "", page: int = 1) -> dict[str, Any]:
    """Everything the detail page shows; items filtered by `state` (blank: all), 50 per page."""
    outcomes = dict(
        Attempt.objects.filter(item__campaign=campaign)
        .exclude(outcome="")
        .values_list("outcome")
        .annotate(n=Count("pk"))
        .values_list("outcome", "n")
    )
    peak = max(outcomes.values(), default=0)
    items = CampaignItem.objects.filter(campaign=campaign).order_by("pk")
    if state in CampaignItem.State.values:
        items = items.filter(state=state)
    count = items.count()
    start = (max(1, page) - 1) * ITEMS_PAGE
    page_items = list(items[start : start + ITEMS_PAGE])
    for item in page_items:
        item.reason_label = reason_label(item.reason)  # type: ignore[attr-defined]
    agents = list(CampaignAgent.objects.filter(campaign=campaign).order_by("bitrix_user_id"))
    # Presence as the agents capability last computed it (docs/agents.md §5): why the dialer
    # skips an agent who is not paused in this campaign.
    presence = {
        a.bitrix_user_id: a
        for a in AgentState.objects.filter(
            portal=campaign.portal, bitrix_user_id__in=[a.bitrix_user_id for a in agents]
        )
    }
    states, reasons = agent_selectors.state_labels(), agent_selectors.reason_labels()
    for agent in agents:
        agent.reason_label = reason_label(agent.pause_reason)  # type: ignore[attr-defined]
        known = presence.get(agent.bitrix_user_id)
        label = _("never read") if known is None else states.get(known.state, known.state)
        if known is not None and known.reason:
            label = f"{label}: {reasons.get(known.reason, known.reason)}"
        agent.presence_label = label  # type: ignore[attr-defined]
    return {
        "campaign": campaign,
        "progress": _progress(campaign),
        "outcomes": [
            {"outcome": k, "n": v, "percent": round(100 * v / peak) if peak else 0}
            for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])
        ],
        "state_reason": reason_label(campaign.state_reason),
        "agents": agents,
        "items": page_items,
        "items_count": count,
        "state_filter": state,
        "page": max(1, page),
        "pages": max(1, -(-count // ITEMS_PAGE)),
    }
