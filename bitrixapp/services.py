"""Portal lifecycle and received events: install, uninstall, event intake and processing."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bitrixapp import oauth, security
from bitrixapp.models import BitrixEvent, Portal
from integration import alerts, jobs
from integration.bitrix import binding, errors
from integration.errors import IntegrationError, ValidationError
from integration.models import Job

logger = logging.getLogger(__name__)

KIND_INSTALL = "portal.install"
KIND_EVENT = "bitrix.event"
#: Events handed to the call pipeline (integration.calls.hooks.on_bitrix_event).
CALL_EVENTS = frozenset({"ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"})
CALL_HOOK_MODULE = "integration.calls.hooks"
CALL_HOOK_NAME = "on_bitrix_event"
INSTALL_ALERT_TAG = "bitrix:install"


class InstallRefused(ValidationError):
    """An install we will not accept (foreign host, token of another portal or app)."""


@dataclass(frozen=True)
class InstallGrant:
    """What an install handshake (iframe POST or ONAPPINSTALL) gave us, not yet trusted."""

    member_id: str
    client_endpoint: str
    access_token: str
    refresh_token: str
    expires_in: float | None
    application_token: str
    scope: str = ""
    user_id: int | None = None
    lang: str = "en"
    server_endpoint: str = ""


def portal_install(*, grant: InstallGrant) -> Portal:
    """Verify an install handshake, store the portal and its tokens, enqueue the binding job.

    The access token is checked with the OAuth server from settings (`app.info`): it must belong
    to the same member_id and to our app. The portal stays `installing` (with the reason) until the
    binding job succeeds. Raises InstallRefused, CredentialsInvalidError (token not genuine),
    TransientError (OAuth server unreachable).
    """
    if not grant.member_id or not grant.access_token:
        raise InstallRefused("install without member_id or access token")
    if not security.endpoint_allowed(grant.client_endpoint):
        raise InstallRefused("client_endpoint is not on an allowed Bitrix24 host")
    info = oauth.token_inspect(access_token=grant.access_token)
    if info.member_id != grant.member_id:
        raise InstallRefused("the access token belongs to another portal")
    if (
        settings.BITRIX24_CLIENT_ID
        and info.client_id
        and info.client_id != settings.BITRIX24_CLIENT_ID
    ):
        raise InstallRefused("the access token belongs to another application")
    endpoint = grant.client_endpoint
    if info.client_endpoint:
        if not security.endpoint_allowed(info.client_endpoint):
            raise InstallRefused("the OAuth server names a client_endpoint on a foreign host")
        endpoint = info.client_endpoint
    with transaction.atomic():
        portal, created = Portal.objects.select_for_update().get_or_create(
            member_id=grant.member_id,
            defaults={"domain": "", "client_endpoint": endpoint},
        )
        portal.client_endpoint = endpoint
        portal.domain = security.portal_origin(endpoint).split("://", 1)[1]
        portal.server_endpoint = grant.server_endpoint[:255]
        portal.scope = info.scope or grant.scope or portal.scope
        portal.lang = (grant.lang or portal.lang)[:8]
        if grant.application_token:
            portal.application_token = grant.application_token
        if grant.user_id:
            portal.installed_by_user_id = grant.user_id
        oauth.tokens_store(
            portal=portal,
            access_token=grant.access_token,
            refresh_token=grant.refresh_token,
            expires_in=grant.expires_in,
        )
        if portal.status != Portal.Status.ACTIVE:
            portal.status = Portal.Status.INSTALLING
            portal.status_reason = "binding events, placements and the telephony line"
            portal.status_changed_at = timezone.now()
        portal.save()
        open_install = Job.objects.filter(
            portal=portal, kind=KIND_INSTALL, state__in=Job.OPEN_STATES
        ).exists()
        if not open_install:
            jobs.job_enqueue(kind=KIND_INSTALL, portal=portal, subject=f"portal:{portal.pk}")
    logger.info(
        "portal install accepted", extra={"portal": portal.member_id, "new_portal": created}
    )
    return portal


def portal_install_run(*, portal: Portal) -> dict[str, Any]:
    """Bind events, placements and the line (job `portal.install`); then the portal is active.

    Failures keep the portal `installing` with a readable reason and are raised for the runner to
    retry; a successful (re-)install resumes work paused under "bitrix".
    """
    try:
        report = binding.portal_bind_all(portal)
    except IntegrationError as exc:
        Portal.objects.filter(pk=portal.pk, status=Portal.Status.INSTALLING).update(
            status_reason=f"install step failed, retrying: {exc}"[:1000]
        )
        raise
    now = timezone.now()
    Portal.objects.filter(pk=portal.pk).update(
        status=Portal.Status.ACTIVE, status_reason="", status_changed_at=now, updated_at=now
    )
    alerts.notification_resolve(portal=portal, tag=INSTALL_ALERT_TAG)
    alerts.notification_resolve(portal=portal, tag=oauth.ALERT_TAG)
    resumed = jobs.jobs_resume(portal=portal, pause_key=errors.PAUSE_KEY)
    return {"bound": report.bound, "existing": report.existing, "resumed": resumed}


def portal_install_failed(*, portal: Portal, error: str) -> None:
    """The binding job gave up: say so on the portal and to its admins."""
    Portal.objects.filter(pk=portal.pk, status=Portal.Status.INSTALLING).update(
        status_reason=f"install failed: {error}"[:1000]
    )
    alerts.notification_raise(
        portal=portal,
        kind="bitrix.install",
        tag=INSTALL_ALERT_TAG,
        message=f"The app could not finish installing on Bitrix24: {error}. Reinstall the app.",
    )


def portal_uninstall(*, portal: Portal, clean: bool) -> None:
    """ONAPPUNINSTALL: tokens wiped, open work cancelled; with CLEAN the portal's data deleted."""
    with transaction.atomic():
        cancelled = jobs.jobs_cancel(portal=portal, reason="application uninstalled from Bitrix24")
        if clean:
            # Cascades to the portal's jobs, events, notifications and call data.
            Portal.objects.filter(pk=portal.pk).delete()
        else:
            Portal.objects.filter(pk=portal.pk).update(
                status=Portal.Status.UNINSTALLED,
                status_reason="application uninstalled from Bitrix24",
                status_changed_at=timezone.now(),
                access_token="",
                refresh_token="",
                application_token="",
                access_expires_at=None,
            )
    logger.warning(
        "portal uninstalled",
        extra={"portal": portal.member_id, "clean": clean, "cancelled_jobs": cancelled},
    )


def _dedupe_key(*, portal: Portal, event: str, payload: dict[str, Any]) -> str:
    data: dict[str, Any] = payload["data"] if isinstance(payload.get("data"), dict) else {}
    call_id = str(data.get("CALL_ID") or "")
    if call_id:
        return f"{portal.member_id}:{event}:{call_id}"[:255]
    # No natural id: the same body (without its tokens) twice is the same event.
    canonical = json.dumps(
        {"event": event, "data": data, "ts": payload.get("ts"), "member": portal.member_id},
        sort_keys=True,
    )
    return f"{portal.member_id}:{event}:sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def event_receive(*, portal: Portal, payload: dict[str, Any]) -> tuple[BitrixEvent, bool]:
    """Store an authenticated event once and hand call events to a worker. Returns (row, created)."""
    event = str(payload.get("event") or "").upper()[:64]
    data: dict[str, Any] = payload["data"] if isinstance(payload.get("data"), dict) else {}
    auth: dict[str, Any] = payload["auth"] if isinstance(payload.get("auth"), dict) else {}
    user_raw = str(auth.get("user_id") or data.get("USER_ID") or "")
    key = _dedupe_key(portal=portal, event=event, payload=payload)
    try:
        with transaction.atomic():
            row = BitrixEvent.objects.create(
                portal=portal,
                event=event,
                dedupe_key=key,
                data=data,  # never the auth block: it carries tokens
                user_id=int(user_raw) if user_raw.isdigit() else None,
                ts=str(payload.get("ts") or "")[:32],
            )
            if event in CALL_EVENTS:
                jobs.job_enqueue(
                    kind=KIND_EVENT,
                    key=f"{KIND_EVENT}:{row.pk}",
                    portal=portal,
                    subject=f"bxevent:{row.pk}",
                    payload={"event_id": row.pk},
                )
            else:
                row.state = BitrixEvent.State.PROCESSED
                row.processed_at = timezone.now()
                row.save(update_fields=["state", "processed_at"])
    except IntegrityError:
        return BitrixEvent.objects.get(dedupe_key=key), False
    return row, True


def call_hook() -> Any:
    """`integration.calls.hooks.on_bitrix_event(event)` if the call pipeline provides it."""
    try:
        module = importlib.import_module(CALL_HOOK_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != CALL_HOOK_MODULE:
            raise
        return None
    return getattr(module, CALL_HOOK_NAME, None)


def event_process(*, event_id: int) -> dict[str, Any]:
    """Job `bitrix.event`: hand the stored event to the call pipeline, then mark it processed."""
    row = BitrixEvent.objects.select_related("portal").get(pk=event_id)
    if row.state == BitrixEvent.State.PROCESSED:
        return {"event": row.event, "skipped": "already processed"}
    hook = call_hook()
    handled = False
    if hook is not None:
        hook(row)
        handled = True
    BitrixEvent.objects.filter(pk=row.pk).update(
        state=BitrixEvent.State.PROCESSED, processed_at=timezone.now(), error=""
    )
    return {"event": row.event, "handled": handled}


def event_failed(*, event_id: int, error: str) -> None:
    BitrixEvent.objects.filter(pk=event_id).update(
        state=BitrixEvent.State.FAILED, error=error[:2000]
    )
