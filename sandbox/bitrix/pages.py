"""The sandbox portal's web UI: a list of portals, a portal home with the app, a lead card with the
app's tab and click-to-call, the call card and notifications. Plain HTML, no framework.

The app is opened the way Bitrix24 opens it (docs/bitrix24.md §1.2): a hidden form POSTs into a
named iframe; the parent page answers BX24.js messages (auth, resize, installFinish) for each
iframe by its APP_SID.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from sandbox.bitrix import agentpages, crmpages, pickers
from sandbox.httpcore import Request, Response, html_response, json_response

if TYPE_CHECKING:
    from sandbox.bitrix.portal import PortalApp

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#eef2f4;color:#333}
header{background:#2fc6f6;color:#fff;padding:10px 20px;font-weight:600}
header a{color:#fff}
main{display:flex;gap:16px;padding:16px}
section{background:#fff;border-radius:8px;padding:12px 16px;flex:1;min-width:0}
aside{width:320px;display:flex;flex-direction:column;gap:16px}
iframe{width:100%;border:1px solid #ddd;border-radius:6px;min-height:420px;background:#fff}
.tabs button{margin-right:6px}
.card{border-left:4px solid #2fc6f6;padding:6px 10px;margin:6px 0;background:#f7fbfd}
.phone{color:#0a6ebd;cursor:pointer;text-decoration:underline}
small{color:#777}
.unitalk{border-top:4px solid #7b3fe4}
.unitalk h3{color:#7b3fe4;margin-top:4px}
.unitalk label{display:block;margin:6px 0 2px;font-size:13px}
.unitalk input,.unitalk select{max-width:100%;box-sizing:border-box}
.unitalk table{font-size:13px;border-collapse:collapse}
.unitalk td,.unitalk th{padding:1px 6px 1px 0;text-align:left}
.key{font-family:monospace;background:#f3eefc;padding:1px 4px}
.card small,#ut-webhooks small,#dial-result{word-break:break-all;overflow-wrap:anywhere}
.ok{color:#2a8a2a}
.error{color:#c0392b}
"""

#: Inline, so the portal page asks for no /favicon.ico (which would answer 404).
FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='3' fill='%232fc6f6'/%3E%3C/svg%3E"
)

PARENT_JS = """
const FRAMES = %(frames)s;
const MEMBER = %(member)s;
const UNITALK = %(unitalk)s;
let finishing = false;
window.addEventListener('message', async (event) => {
  const d = event.data;
  if (!d || !d.bx24 || d.reply) return;
  const frame = FRAMES[d.sid];
  if (!frame) return;
  const reply = (result) => event.source.postMessage({bx24: true, reply: true, cbid: d.cbid, result}, '*');
  if (d.cmd === 'init') reply(frame.state);
  else if (d.cmd === 'resize') {
    const el = document.getElementById(frame.iframe);
    if (el && d.params.height) el.style.height = Math.max(200, d.params.height) + 'px';
    reply(true);
  } else if (d.cmd === 'installFinish') {
    // Once per page, and the answer read to its end: fetch() resolves on the headers, and a
    // reload while the body is still coming aborts the request (seen as ERR_ABORTED).
    if (finishing) return;
    finishing = true;
    const done = await fetch('/_sandbox/portals/' + MEMBER + '/install-finish', {method: 'POST'});
    await done.text();
    if (window.INSTALL_EVENT) await window.INSTALL_EVENT.catch(() => null);
    reply(true);
    location.reload();
  } else if (d.cmd === 'phoneTo') {
    // Bitrix24 starts the call through the app that handles telephony: click-to-call
    // (ONEXTERNALCALLSTART), the same path as a phone number clicked in the CRM.
    dial(String(d.params.number || ''), '', '');
    reply(true);
  } else if (d.cmd === 'refreshAuth') {
    const r = await fetch('/_sandbox/portals/' + MEMBER + '/tokens', {method: 'POST',
      body: JSON.stringify({user_id: frame.state.auth.user_id})});
    reply(await r.json());
  } else if (d.cmd === 'selectUser' || d.cmd === 'selectUsers') {
    // Bitrix24's own people dialog: the app gets the chosen person(s); closing it answers
    // nothing (the callback is not called), as in Bitrix24.
    const chosen = await pickUsers(d.cmd === 'selectUsers');
    if (chosen !== null) reply(d.cmd === 'selectUsers' ? chosen : chosen[0]);
  } else if (d.cmd === 'openApplication') { location.href = '/portal/' + MEMBER + '/'; }
  else reply(null);
});
async function post(path, body) {
  const r = await fetch(path, {method: 'POST', body: JSON.stringify(body || {})});
  return r.json();
}
async function dial(phone, type, id) {
  const r = await post('/_sandbox/portals/' + MEMBER + '/click-to-call',
    {phone, entity_type: type, entity_id: id, user_id: %(user)s});
  const out = document.getElementById('dial-result');
  out.innerHTML = r.call ? ('Calling ' + esc(phone) + '…<br><small>' + esc(r.call.CALL_ID) + '</small>') :
    esc('Error: ' + (r.error_description || r.error));
}
const esc = (s) => String(s).replace(/[&<>"']/g,
  (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
// Bitrix24 shows notification BBCode formatted; [b] and line breaks are all the app sends.
const bbcode = (s) => esc(s).replace(/\\[b\\]([\\s\\S]*?)\\[\\/b\\]/g, '<b>$1</b>')
  .replace(/\\n/g, '<br>');
async function feed() {
  const r = await fetch('/portal/' + MEMBER + '/feed.json?user=' + %(user)s);
  if (!r.ok) return;
  const f = await r.json();
  document.getElementById('cards').innerHTML = f.cards.map(c =>
    `<div class="card"><b>${c.direction} call</b> ${esc(c.phone)}` +
    `${c.call_list_id !== '0' ? ` · call list #${esc(c.call_list_id)}` : ''}` +
    `<br><small>${esc(c.call_id)}</small></div>`
  ).join('') || '<small>No active calls</small>';
  document.getElementById('notes').innerHTML = f.notifications.map(n =>
    `<div class="card">${bbcode(n.MESSAGE)}<br><small>${esc(n.DATE)} ${esc(n.TAG)}</small></div>`
  ).join('') || '<small>No notifications</small>';
  telephonyLog(f);
  // A lead the app creates for an unknown caller shows up without a reload.
  const leads = document.getElementById('leads');
  if (leads) leads.innerHTML = f.leads.map(l =>
    `<li><a href="/portal/${encodeURIComponent(MEMBER)}/lead/${esc(l.id)}/">#${esc(l.id)} ${esc(l.title)}</a></li>`
  ).join('') || '<li>none</li>';
}
// Unitalk's side, played from this page: its control API answers CORS * (sandbox/httpcore.py).
async function unitalk(path, body) {
  const r = await fetch(UNITALK + '/_sandbox/' + path, {method: 'POST', body: JSON.stringify(body)});
  return {ok: r.ok, data: await r.json()};
}
const val = (id) => document.getElementById(id).value.trim();
const say = (id, ok, text) => {
  const el = document.getElementById(id); el.textContent = text; el.className = ok ? 'ok' : 'error';
};
async function saveWebhook() {
  // replace: a newcomer pasting again (another portal, a fresh install) wants one hook, not two.
  const r = await unitalk('webhooks', {api_key: val('ut-key'), url: val('ut-webhook'), replace: true});
  say('ut-webhook-status', r.ok, r.ok ? 'Saved: Unitalk now posts every call event there.'
    : 'Error: ' + r.data.error);
  if (r.ok) document.getElementById('ut-webhooks').innerHTML =
    r.data.webhooks.map(h => `<li><small>${esc(h.url)}</small></li>`).join('');
}
async function setOutcome() {
  const r = await unitalk('settings', {api_key: val('ut-key'), outcome: val('ut-default-outcome')});
  say('ut-outcome-status', r.ok, r.ok ? 'Calls dialled from Bitrix24 now end: ' + r.data.outcome
    : 'Error: ' + r.data.error);
}
async function ring() {
  const r = await unitalk('calls', {api_key: val('ut-key'), from: val('ut-from'), line: val('ut-line'),
    outcome: val('ut-outcome'), talk_time: Number(val('ut-talk') || 0)});
  say('ut-ring-status', r.ok, r.ok ? 'Ringing line ' + val('ut-line') + ' from ' + val('ut-from')
    + ' (Unitalk call ' + r.data.call.id + ')' : 'Error: ' + r.data.error);
}
function telephonyLog(f) {
  const el = document.getElementById('telephony');
  if (!el) return;
  el.innerHTML = f.finished.map(c =>
    `<div class="card" data-call-id="${esc(c.call_id)}" data-status="${esc(c.status)}">` +
    `<b>${c.incoming ? 'Incoming' : 'Outgoing'}</b> ${esc(c.phone)} · status ${esc(c.status)} · ` +
    `${esc(c.duration)} s${c.record ? ` · <a class="record" href="${esc(c.record)}">record</a>` : ''}` +
    `${c.call_list_id !== '0' ? ` · call list #${esc(c.call_list_id)}` : ''}` +
    `<br><small>${esc(c.call_id)}</small></div>`
  ).join('') || '<small>No finished calls yet</small>';
}
if (MEMBER) { feed(); setInterval(feed, 2000); }
"""


def render(app: PortalApp, request: Request) -> Response:
    path = request.path.rstrip("/") or "/"
    if path == "/":
        return _index(app)
    match = re.fullmatch(r"/portal/([^/]+)(/.*)?", path)
    if not match:
        return html_response("<h1>404 Not found</h1>", 404)
    portal = app.world.portal(match.group(1))
    if portal is None:
        return html_response("<h1>Portal not found</h1>", 404)
    rest = match.group(2) or ""
    user_id = str(request.query.get("user") or portal["users"][0]["ID"])
    if rest == "/feed.json":
        return json_response(_feed(app, portal, user_id))
    if rest == "/users.json":
        return json_response({"users": pickers.picker_users(app, portal)})
    lead = re.fullmatch(r"/lead/(\d+)", rest)
    if lead:
        return _lead(app, portal, user_id, lead.group(1))
    section = {"/crm": ("CRM", crmpages.crm_body), "/agents": ("Agents", agentpages.agents_body)}
    if rest in section:
        title, fragment = section[rest]
        inner = fragment(app, portal, user_id)
        body = f"{_header(portal)}<main><section>{inner}</section>{_side(app, portal)}</main>"
        return _page(app, title, body, portal["member_id"], user_id, {})
    return _home(app, portal, user_id)


def _page(
    app: PortalApp, title: str, body: str, member: str, user_id: str, frames: dict[str, Any]
) -> Response:
    script = pickers.PICKER_JS + PARENT_JS % {
        "frames": json.dumps(frames),
        "member": json.dumps(member),
        "user": json.dumps(user_id),
        "unitalk": json.dumps(app.world.unitalk_url),
    }
    return html_response(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<link rel='icon' href='{FAVICON}'>"
        f"<style>{STYLE}</style></head><body>{body}<script>{script}</script></body></html>"
    )


def _iframe(
    app: PortalApp,
    portal: dict[str, Any],
    user_id: str,
    frames: dict[str, Any],
    *,
    path: str,
    placement: str,
    options: dict[str, Any] | None = None,
    handler: str | None = None,
) -> str:
    url, form = app.iframe_request(portal, user_id, path, placement, options, handler)
    sid = parse_qs(urlsplit(url).query)["APP_SID"][0]
    name = f"frame-{sid[:8]}"
    frames[sid] = {
        "iframe": name,
        "state": {
            "auth": {
                "access_token": form["AUTH_ID"],
                "refresh_token": form["REFRESH_ID"],
                "expires_in": int(form["AUTH_EXPIRES"]),
                "domain": portal["domain"],
                "member_id": portal["member_id"],
                "client_endpoint": app.world.rest_base(portal["member_id"]),
                "user_id": user_id,
            },
            "placement": placement,
            "options": options or {},
            "isAdmin": any(u["ID"] == user_id and u["ADMIN"] for u in portal["users"]),
        },
    }
    fields = "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(str(v))}'>"
        for k, v in form.items()
    )
    return (
        f"<form id='form-{name}' method='post' target='{name}' action='{escape(url)}'>{fields}"
        # A Bitrix24 portal lets its app frames write to the clipboard (the app's Copy buttons).
        f"</form><iframe id='{name}' name='{name}' allow='clipboard-write'></iframe>"
        f"<script>document.getElementById('form-{name}').submit()</script>"
    )


def _header(portal: dict[str, Any] | None) -> str:
    if portal is None:
        return "<header>Bitrix24 sandbox</header>"
    member = escape(portal["member_id"])
    return (
        f"<header><a href='/'>Bitrix24 sandbox</a> · portal {member} · "
        f"<a href='/portal/{member}/'>Application</a> · <a href='/portal/{member}/crm/'>CRM</a>"
        f" · <a href='/portal/{member}/agents/'>Agents</a>"
        f" · status {escape(portal['status'])}</header>"
    )


def _index(app: PortalApp) -> Response:
    portals = list(app.store.data["portals"].values())
    rows = "".join(
        f"<li><a href='/portal/{escape(p['member_id'])}/'>{escape(p['member_id'])}</a> "
        f"({escape(p['status'])}, {len(p['leads'])} leads)</li>"
        for p in portals
    )
    body = (
        f"{_header(None)}<main><section><h2>Portals</h2><ul>{rows or '<li>none yet</li>'}</ul>"
        "<button onclick=\"post('/_sandbox/portals').then(p => location.href='/portal/'+p.member_id+'/')\">"
        "Create a portal</button><p><small>App URL: "
        f"{escape(app.world.settings.app_url)}</small></p></section></main>"
    )
    return _page(app, "Bitrix24 sandbox", body, "", "1", {})


def _side(app: PortalApp, portal: dict[str, Any]) -> str:
    leads = "".join(
        f"<li><a href='/portal/{escape(portal['member_id'])}/lead/{escape(lead['ID'])}/'>"
        f"#{escape(lead['ID'])} {escape(lead['TITLE'] or lead['NAME'])}</a></li>"
        for lead in list(portal["leads"].values())[-15:]
    )
    return (
        "<aside><section><h3>Call card</h3><div id='cards'></div><div id='dial-result'></div>"
        "</section><section><h3>Notifications</h3><div id='notes'></div></section>"
        f"<section><h3>Leads</h3><ul id='leads'>{leads or '<li>none</li>'}</ul>"
        "<input id='lead-phone' placeholder='+380501234567'> "
        "<button onclick=\"post('/_sandbox/portals/'+MEMBER+'/lead',"
        "{phone: document.getElementById('lead-phone').value}).then(()=>location.reload())\">"
        "Add lead</button></section>"
        "<section><h3>Telephony log</h3><div id='telephony'></div></section>"
        f"{_unitalk_panel(app, portal)}</aside>"
    )


OUTCOME_CHOICES = ("answer", "noanswer", "busy", "failed")


def _unitalk_panel(app: PortalApp, portal: dict[str, Any]) -> str:
    """Unitalk's side of the demo: the key to paste into the app, where to paste the app's
    webhook URL, which line is which portal user, and an inbound call to ring a line with.

    Reads the Unitalk project from the shared store; the forms post to Unitalk's own control API
    so the page does exactly what the curl examples in docs/sandbox.md do.
    """
    with app.store.lock:
        projects = list(app.store.data["unitalk"]["projects"].values())
        project = projects[0] if projects else None
        settings = dict(app.store.data["unitalk"].get("settings", {}))
        hooks: list[str] = []
        users: list[dict[str, Any]] = []
        if project:
            settings.update(project.get("settings", {}))
            hooks = [h["url"] for h in project["webhooks"]]
            users = list(project["users"])
    if project is None:
        return (
            "<section class='unitalk'><h3>Unitalk (simulated)</h3><p>No Unitalk account: "
            "start the sandbox with a key or POST /_sandbox/keys.</p></section>"
        )
    by_inner = {u["UF_PHONE_INNER"]: u for u in portal["users"] if u["UF_PHONE_INNER"]}
    rows = ""
    for user in users:
        line = str(user.get("line") or "")
        match = by_inner.get(line)
        who = (
            f"{escape(match['NAME'])} (portal user {escape(match['ID'])})"
            if match
            else "<small>no portal user with this inner number</small>"
        )
        rows += (
            f"<tr data-line='{escape(line)}'><td>{escape(line)}</td>"
            f"<td>{escape(str(user.get('firstName', '')))} {escape(str(user.get('lastName', '')))}"
            f"</td><td>{who}</td></tr>"
        )
    current = str(settings.get("outcome") or "answer")

    def options(selected: str) -> str:
        return "".join(
            f"<option{' selected' if o == selected else ''}>{o}</option>" for o in OUTCOME_CHOICES
        )

    lines = "".join(
        f"<option>{escape(str(u.get('line') or ''))}</option>" for u in users if u.get("line")
    )
    hook_list = "".join(f"<li><small>{escape(h)}</small></li>" for h in hooks)
    return (
        "<section class='unitalk' id='unitalk-panel'><h3>Unitalk (simulated)</h3>"
        f"<label>API key (paste it into the app's Settings)</label>"
        f"<span class='key' id='ut-key-shown'>{escape(project['api_key'])}</span>"
        f"<input type='hidden' id='ut-key' value='{escape(project['api_key'])}'>"
        "<label for='ut-webhook'>Event handling: paste the app's webhook URL</label>"
        "<input id='ut-webhook' size='34' placeholder='http://127.0.0.1:8000/unitalk/webhook/…'> "
        "<button id='ut-webhook-save' onclick='saveWebhook()'>Save webhook</button>"
        "<div id='ut-webhook-status'></div>"
        f"<ul id='ut-webhooks'>{hook_list or '<li><small>no webhook yet</small></li>'}</ul>"
        "<label>Users and lines (the app matches them by inner number)</label>"
        "<table id='ut-users'><tr><th>Line</th><th>Unitalk user</th><th>Portal user</th></tr>"
        f"{rows}</table>"
        "<label for='ut-default-outcome'>Calls dialled from Bitrix24 end with</label>"
        f"<select id='ut-default-outcome'>{options(current)}</select> "
        "<button onclick='setOutcome()'>Set</button><div id='ut-outcome-status'></div>"
        "<label>Ring a line (an inbound call)</label>"
        "<input id='ut-from' size='14' value='380671234567' placeholder='caller number'> → "
        f"<select id='ut-line'>{lines}</select><br>"
        f"<select id='ut-outcome'>{options('noanswer')}</select> "
        "<input id='ut-talk' type='number' min='0' value='20' style='width:60px'> s talk "
        "<button id='ut-ring' onclick='ring()'>Ring</button><div id='ut-ring-status'></div>"
        "</section>"
    )


def _home(app: PortalApp, portal: dict[str, Any], user_id: str) -> Response:
    frames: dict[str, Any] = {}
    settings = app.world.settings
    if portal["status"] == "uninstalled":
        content = "<p>The application was uninstalled.</p>"
    elif portal["installed"]:
        content = _iframe(app, portal, user_id, frames, path=settings.app_path, placement="DEFAULT")
    else:
        # The install page; the app must call BX24.installFinish() (docs/bitrix24.md §1.1).
        content = (
            "<p><small>Installing… (ONAPPINSTALL sent; waiting for BX24.installFinish)</small></p>"
            + _iframe(app, portal, user_id, frames, path=settings.install_path, placement="DEFAULT")
            # Kept as a promise: installFinish waits for it, so its reload aborts nothing.
            + "<script>window.INSTALL_EVENT = fetch("
            f"'/_sandbox/portals/{escape(portal['member_id'])}/install-event',"
            " {method: 'POST'}).then(r => r.text())</script>"
        )
    body = f"{_header(portal)}<main><section>{content}</section>{_side(app, portal)}</main>"
    return _page(app, "Application", body, portal["member_id"], user_id, frames)


def _lead(app: PortalApp, portal: dict[str, Any], user_id: str, lead_id: str) -> Response:
    lead = portal["leads"].get(lead_id)
    if lead is None:
        return html_response("<h1>Lead not found</h1>", 404)
    frames: dict[str, Any] = {}
    phones = "".join(
        f"<li><span class='phone' onclick=\"dial({escape(json.dumps(p['VALUE']))},'LEAD',"
        f'{escape(json.dumps(lead_id))})">{escape(p["VALUE"])}</span></li>'
        for p in lead["PHONE"]
    )
    tabs = ""
    if portal["installed"]:
        for placement in portal["placements"]:
            if placement["placement"] != "CRM_LEAD_DETAIL_TAB":
                continue
            tabs += f"<h3>{escape(placement['title'] or 'App')}</h3>" + _iframe(
                app,
                portal,
                user_id,
                frames,
                path="",
                placement="CRM_LEAD_DETAIL_TAB",
                options={"ID": lead_id},
                handler=placement["handler"],
            )
    body = (
        f"{_header(portal)}<main><section><h2>Lead #{escape(lead_id)}: "
        f"{escape(lead['TITLE'])}</h2><p>{escape(lead['NAME'])} {escape(lead['LAST_NAME'])}</p>"
        f"<p>Phones (click to call):</p><ul>{phones}</ul>{tabs}"
        f"{crmpages.lead_panel(app, portal, user_id, lead_id)}</section>{_side(app, portal)}</main>"
    )
    return _page(app, f"Lead {lead_id}", body, portal["member_id"], user_id, frames)


def _feed(app: PortalApp, portal: dict[str, Any], user_id: str) -> dict[str, Any]:
    with app.store.lock:
        cards = []
        for card in portal["call_cards"]:
            active = portal["calls"].get(card["CALL_ID"])
            if card["USER_ID"] == user_id and card["SHOWN"] and active:
                cards.append(
                    {
                        "call_id": card["CALL_ID"],
                        "phone": active["PHONE_NUMBER"],
                        "direction": "Outgoing" if active["TYPE"] == 1 else "Incoming",
                        "call_list_id": str(active.get("CALL_LIST_ID") or "0"),
                    }
                )
        notes = [n for n in portal["notifications"] if n["USER_ID"] == user_id][-10:]
        records = {r["CALL_ID"]: r["DOWNLOAD_URL"] for r in portal["records"]}
        finished = [
            {
                "call_id": call_id,
                "phone": record["PHONE_NUMBER"],
                "incoming": record["INCOMING"] != "1",
                "status": str(record["CALL_FAILED_CODE"]),
                "duration": record["CALL_DURATION"],
                "record": records.get(call_id, ""),
                "call_list_id": str(record.get("CALL_LIST_ID") or "0"),
            }
            for call_id, record in list(portal["finished"].items())[-8:]
        ]
    return {
        "installed": portal["installed"],
        "cards": cards,
        "notifications": notes[::-1],
        "finished": finished[::-1],
        "leads": [
            {"id": lead["ID"], "title": lead["TITLE"] or lead["NAME"]}
            for lead in list(portal["leads"].values())[-15:]
        ],
    }
