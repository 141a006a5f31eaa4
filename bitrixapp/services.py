"""Portal lifecycle and received events: install, uninstall, event intake and processing."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from bitrixapp import auth
from bitrixapp.models import BitrixEvent, Portal, PortalOptions, portal_options
from integration import jobs
from integration.bitrix import binding, errors, hosts, oauth
from integration.bitrix import users as bitrix_users
from integration.calls import dial
from integration.core import alerts, inputs
from integration.core.errors import IntegrationError, ValidationError
from integration.models import Job

logger = logging.getLogger(__name__)

KIND_INSTALL = "portal.install"
KIND_EVENT = "bitrix.event"
#: Events handed to the call pipeline (integration.calls.hooks.on_bitrix_event).
CALL_EVENTS = frozenset({"ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"})
INSTALL_ALERT_TAG = "bitrix:install"
INSTALL_REFUSED_KIND = "bitrix.install_refused"
INSTALL_REFUSED_TAG = "bitrix:install-refused"


class InstallRefused(ValidationError):
    """An install we will not accept (foreign host, token of another portal or app)."""


class InstallNotAdmin(InstallRefused):
    """The token is genuine but its user is not an administrator of the portal (403)."""


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
    lang: str = "en"
    server_endpoint: str = ""


@dataclass(frozen=True)
class Installed:
    """An accepted install: the portal and the administrator who installed it."""

    portal: Portal
    user_id: int
    is_admin: bool


def _install_endpoint(*, grant: InstallGrant, info: oauth.TokenInfo, known: Portal | None) -> str:
    """Where the portal lives: the OAuth server's word, else the stored one, else the request's.

    A known portal's endpoint never changes because a request says so (docs/security.md).
    """
    if info.client_endpoint:
        if not hosts.endpoint_allowed(info.client_endpoint):
            raise InstallRefused("the OAuth server names a client_endpoint on a foreign host")
        return info.client_endpoint
    if known is not None and known.client_endpoint:
        return known.client_endpoint
    return grant.client_endpoint


def _refuse_non_admin(*, known: Portal | None, user_id: int) -> None:
    """Log, tell the portal's admins (once while the row is open), refuse with 403."""
    reason = "only a Bitrix24 administrator of this portal can install or reinstall the app"
    logger.warning(
        "install refused: not an administrator",
        extra={"portal": known.member_id if known else "", "user": user_id},
    )
    if known is not None:
        alerts.notification_raise_once(
            portal=known,
            kind=INSTALL_REFUSED_KIND,
            tag=INSTALL_REFUSED_TAG,
            severity="warning",
            message=(
                f"Bitrix24 user {user_id}, who is not an administrator, tried to install or "
                "reinstall the app. Nothing was changed."
            ),
            context={"user": user_id},
            params={"user": user_id},
        )
    raise InstallNotAdmin(reason)


def portal_install(*, grant: InstallGrant) -> Installed:
    """Verify an install handshake, store the portal and its tokens, enqueue the binding job.

    The access token is checked with the OAuth server from settings (`app.info`): it must belong
    to the same member_id and to our app. Then the portal itself is asked (`user.admin`, on the
    verified endpoint) whether the token's user is an administrator: first install, re-install
    and any change of the stored application_token or OAuth pair need one (docs/security.md).
    Nothing is stored before both checks pass. The portal stays `installing` (with the reason)
    until the binding job succeeds. Raises InstallRefused, InstallNotAdmin (a non-admin's
    token: the portal's admins are told), CredentialsInvalidError (token not genuine),
    TransientError (OAuth server unreachable).
    """
    if not grant.member_id or not grant.access_token:
        raise InstallRefused("install without member_id or access token")
    if len(grant.member_id) > 64:
        raise InstallRefused("member_id is too long")
    if not hosts.endpoint_allowed(grant.client_endpoint):
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
    known = Portal.objects.filter(member_id=grant.member_id).first()
    endpoint = _install_endpoint(grant=grant, info=info, known=known)
    # Asked of the portal where it lives; unsaved for a first install (nothing stored yet).
    asked = Portal(
        member_id=grant.member_id,
        client_endpoint=endpoint,
        rate_burst=known.rate_burst if known else Portal._meta.get_field("rate_burst").default,
        rate_drain=known.rate_drain if known else Portal._meta.get_field("rate_drain").default,
    )
    try:
        installer = auth.portal_user_ask(portal=asked, token=grant.access_token)
    except auth.AuthenticationFailed as exc:
        raise InstallRefused(
            f"the portal did not confirm the installing user: {exc.reason}"
        ) from exc
    if not installer.is_admin:
        _refuse_non_admin(known=known, user_id=installer.user_id)
    with transaction.atomic():
        portal, created = Portal.objects.select_for_update().get_or_create(
            member_id=grant.member_id,
            defaults={"domain": "", "client_endpoint": endpoint},
        )
        portal.client_endpoint = endpoint
        portal.domain = hosts.portal_origin(endpoint).split("://", 1)[1]
        portal.server_endpoint = grant.server_endpoint[:255]
        portal.scope = info.scope or grant.scope or portal.scope
        portal.lang = (grant.lang or portal.lang)[:8]
        if grant.application_token:
            portal.application_token = grant.application_token
        # The administrator the portal just confirmed (never auth[user_id] from the request).
        portal.installed_by_user_id = installer.user_id
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
        alerts.notification_resolve(portal=portal, tag=INSTALL_REFUSED_TAG)
        open_install = Job.objects.filter(
            portal=portal, kind=KIND_INSTALL, state__in=Job.OPEN_STATES
        ).exists()
        if not open_install:
            jobs.job_enqueue(kind=KIND_INSTALL, portal=portal, subject=f"portal:{portal.pk}")
    logger.info(
        "portal install accepted",
        extra={"portal": portal.member_id, "new_portal": created, "user": installer.user_id},
    )
    return Installed(portal=portal, user_id=installer.user_id, is_admin=installer.is_admin)


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
    if report.left_out:
        logger.warning("install went on without: %s", report.left_out)
    return {
        "bound": report.bound,
        "existing": report.existing,
        "left_out": report.left_out,
        "resumed": resumed,
    }


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


def dedupe_key(*, member_id: str, event: str, data: dict[str, Any], ts: Any) -> str:
    """The natural key of an event: a hash of its whole identity, whatever its length.

    Event + CALL_ID when the event has one; otherwise the body without its tokens (the same
    body twice is the same event). Hashed, never cut: two CALL_IDs that differ only after the
    column's 255 characters are two events (migration 0004 rewrote older keys).
    """
    call_id = str(data.get("CALL_ID") or "")
    if call_id:
        identity: Any = {"member": member_id, "event": event, "call_id": call_id}
    else:
        identity = {"event": event, "data": data, "ts": ts, "member": member_id}
    canonical = json.dumps(identity, sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def event_receive(*, portal: Portal, payload: dict[str, Any]) -> tuple[BitrixEvent, bool]:
    """Store an authenticated event once; a call event starts its call.dial job in the same
    transaction (a worker dials it). Returns (row, created)."""
    event = str(payload.get("event") or "").upper()[:64]
    data: dict[str, Any] = payload["data"] if isinstance(payload.get("data"), dict) else {}
    auth: dict[str, Any] = payload["auth"] if isinstance(payload.get("auth"), dict) else {}
    user_raw = auth.get("user_id") or data.get("USER_ID")
    user_id = inputs.parse_int_or_none(user_raw, field="auth[user_id]")
    ts = str(payload.get("ts") or "")[:32]
    key = dedupe_key(member_id=portal.member_id, event=event, data=data, ts=ts or None)
    try:
        with transaction.atomic():
            # Stored as processed: the door finishes with it here (a call event is routed
            # below, in this transaction), so no second write on the common path.
            row = BitrixEvent.objects.create(
                portal=portal,
                event=event,
                dedupe_key=key,
                data=data,  # never the auth block: it carries tokens
                user_id=user_id,
                ts=ts,
                state=BitrixEvent.State.PROCESSED,
                processed_at=timezone.now(),
            )
            if event in CALL_EVENTS and not _call_event_route(row):
                row.state, row.processed_at = BitrixEvent.State.RECEIVED, None
                row.save(update_fields=["state", "processed_at"])
    except IntegrityError:
        return BitrixEvent.objects.get(dedupe_key=key), False
    return row, True


def _call_event_route(row: BitrixEvent) -> bool:
    """Start the click's call.dial job in the event's own transaction (database work only, so
    the door still waits on nobody): the dial job is the durable work, and the person waits one
    job less (issue 17, docs/pipeline.md "Lanes"). Should routing fail here, the `bitrix.event`
    job routes it from a worker instead, as for events stored before. True when routed."""
    try:
        with transaction.atomic():
            dial.dial_event_route(event=row)
    except Exception:  # never lose a click to a bug here: the worker retries it, visibly
        logger.exception("call event not routed at the door; a worker routes it")
        jobs.job_enqueue(
            kind=KIND_EVENT,
            key=f"{KIND_EVENT}:{row.pk}",
            portal=row.portal,
            subject=f"bxevent:{row.pk}",
            payload={"event_id": row.pk},
        )
        return False
    return True


def event_process(*, event_id: int) -> dict[str, Any]:
    """Job `bitrix.event`: hand a stored event the door could not route (or stored before the
    door routed call events itself) to the call pipeline (calls/dial.py), mark it processed."""
    row = BitrixEvent.objects.select_related("portal").get(pk=event_id)
    if row.state == BitrixEvent.State.PROCESSED:
        return {"event": row.event, "skipped": "already processed"}
    dial.dial_event_route(event=row)
    BitrixEvent.objects.filter(pk=row.pk).update(
        state=BitrixEvent.State.PROCESSED, processed_at=timezone.now(), error=""
    )
    return {"event": row.event, "handled": True}


def event_failed(*, event_id: int, error: str) -> None:
    BitrixEvent.objects.filter(pk=event_id).update(
        state=BitrixEvent.State.FAILED, error=error[:2000]
    )


# --- Settings page (issue #7): options and page language (the Unitalk part: integration/unitalk)

_EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


class OptionsInvalid(ValidationError):
    """Input on the settings page was refused; `errors` maps field name -> message to show."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid settings: " + ", ".join(sorted(errors)))
        self.errors = errors


def portal_lang_update(*, portal: Portal, lang: str) -> None:
    """Remember the language an admin uses: notices and e-mails to the portal are written in it."""
    if lang and portal.lang != lang:
        Portal.objects.filter(pk=portal.pk).update(lang=lang)
        portal.lang = lang


def _user_id_or_error(
    value: Any, known: dict[int, str] | None, errors: dict[str, str], field: str
) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        user_id = inputs.parse_int(value, field=field, minimum=1)
    except inputs.InputError:
        errors[field] = _("Enter a Bitrix24 user id (a positive number).")
        return None
    if known is None:
        errors[field] = _("The list of portal users is still loading; try again in a moment.")
        return None
    if user_id not in known:
        errors[field] = _("There is no active user %(id)s on this portal.") % {"id": user_id}
        return None
    return user_id


def options_update(*, portal: Portal, user_id: int, data: dict[str, Any]) -> PortalOptions:
    """Save the admin's choices; nothing is saved when any field is wrong.

    Raises OptionsInvalid with a message per wrong field (bad e-mail, unknown user id, value
    outside the choices).
    """
    errors: dict[str, str] = {}
    known = bitrix_users.users_directory(portal=portal)
    card_mode = str(data.get("card_mode") or "")
    if card_mode not in PortalOptions.CardMode.values:
        errors["card_mode"] = _("Choose when the call card is shown.")
    rule = str(data.get("missed_owner_rule") or "")
    if rule not in PortalOptions.MissedOwnerRule.values:
        errors["missed_owner_rule"] = _("Choose who is told about missed calls.")
    default_user = _user_id_or_error(data.get("default_user_id"), known, errors, "default_user_id")
    if rule == PortalOptions.MissedOwnerRule.DEFAULT_USER and default_user is None:
        errors.setdefault("default_user_id", _("Choose the default user for missed calls."))
    raw_ids = data.get("notify_user_ids") or []
    if isinstance(raw_ids, str):
        raw_ids = [p for p in re.split(r"[\s,;]+", raw_ids) if p]
    notify_ids: list[int] = []
    for raw in raw_ids if isinstance(raw_ids, list) else [raw_ids]:
        uid = _user_id_or_error(raw, known, errors, "notify_user_ids")
        if uid is not None and uid not in notify_ids:
            notify_ids.append(uid)
    emails = [
        a.strip() for a in re.split(r"[,;\s]+", str(data.get("stakeholder_emails") or "")) if a
    ]
    bad = [a for a in emails if not _EMAIL_RE.match(a)]
    if bad:
        errors["stakeholder_emails"] = _("Not an e-mail address: %(value)s") % {
            "value": ", ".join(bad)
        }
    if errors:
        raise OptionsInvalid(errors)
    with transaction.atomic():
        options = portal_options(portal)
        options.create_leads = _flag(data.get("create_leads"))
        options.card_mode = card_mode
        options.recordings_to_drive = _flag(data.get("recordings_to_drive"))
        options.missed_owner_rule = rule
        options.default_user_id = default_user
        options.notify_user_ids = notify_ids
        options.stakeholder_emails = ", ".join(emails)
        options.daily_digest = _flag(data.get("daily_digest"))
        options.updated_by_user_id = user_id
        options.save()
    logger.info("portal options saved", extra={"portal": portal.member_id, "user": user_id})
    return options


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "on", "Y", "y", "yes")
