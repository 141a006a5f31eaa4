"""The sandbox portal's web UI: a list of portals, a portal home with the app, a lead card with the
app's tab and click-to-call, the call card and notifications. Plain HTML, no framework.

The app is opened the way Bitrix24 opens it (§1.2): a hidden form POSTs into a named iframe; the
parent page answers BX24.js messages (auth, resize, installFinish) for each iframe by its APP_SID.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from sandbox.httpcore import Request, Response, html_response, json_response

if TYPE_CHECKING:
    from sandbox.portal import PortalApp

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
"""

PARENT_JS = """
const FRAMES = %(frames)s;
const MEMBER = %(member)s;
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
    await fetch('/_sandbox/portals/' + MEMBER + '/install-finish', {method: 'POST'});
    reply(true);
    location.reload();
  } else if (d.cmd === 'refreshAuth') {
    const r = await fetch('/_sandbox/portals/' + MEMBER + '/tokens', {method: 'POST',
      body: JSON.stringify({user_id: frame.state.auth.user_id})});
    reply(await r.json());
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
  document.getElementById('dial-result').textContent = r.call ? ('Calling… ' + r.call.CALL_ID) :
    ('Error: ' + (r.error_description || r.error));
}
const esc = (s) => String(s).replace(/[&<>"']/g,
  (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
async function feed() {
  const r = await fetch('/portal/' + MEMBER + '/feed.json?user=' + %(user)s);
  if (!r.ok) return;
  const f = await r.json();
  document.getElementById('cards').innerHTML = f.cards.map(c =>
    `<div class="card"><b>${c.direction} call</b> ${esc(c.phone)}<br><small>${esc(c.call_id)}</small></div>`
  ).join('') || '<small>No active calls</small>';
  document.getElementById('notes').innerHTML = f.notifications.map(n =>
    `<div class="card">${esc(n.MESSAGE)}<br><small>${esc(n.DATE)} ${esc(n.TAG)}</small></div>`
  ).join('') || '<small>No notifications</small>';
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
    lead = re.fullmatch(r"/lead/(\d+)", rest)
    if lead:
        return _lead(app, portal, user_id, lead.group(1))
    return _home(app, portal, user_id)


def _page(title: str, body: str, member: str, user_id: str, frames: dict[str, Any]) -> Response:
    script = PARENT_JS % {
        "frames": json.dumps(frames),
        "member": json.dumps(member),
        "user": json.dumps(user_id),
    }
    return html_response(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
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
                "client_endpoint": f"{app.world.bitrix_url}/rest/",
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
        f"</form><iframe id='{name}' name='{name}'></iframe>"
        f"<script>document.getElementById('form-{name}').submit()</script>"
    )


def _header(portal: dict[str, Any] | None) -> str:
    if portal is None:
        return "<header>Bitrix24 sandbox</header>"
    member = escape(portal["member_id"])
    return (
        f"<header><a href='/'>Bitrix24 sandbox</a> · portal {member} · "
        f"<a href='/portal/{member}/'>Application</a> · status {escape(portal['status'])}</header>"
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
    return _page("Bitrix24 sandbox", body, "", "1", {})


def _side(portal: dict[str, Any]) -> str:
    leads = "".join(
        f"<li><a href='/portal/{escape(portal['member_id'])}/lead/{escape(lead['ID'])}/'>"
        f"#{escape(lead['ID'])} {escape(lead['TITLE'] or lead['NAME'])}</a></li>"
        for lead in list(portal["leads"].values())[-15:]
    )
    return (
        "<aside><section><h3>Call card</h3><div id='cards'></div><div id='dial-result'></div>"
        "</section><section><h3>Notifications</h3><div id='notes'></div></section>"
        f"<section><h3>Leads</h3><ul>{leads or '<li>none</li>'}</ul>"
        "<input id='lead-phone' placeholder='+380501234567'> "
        "<button onclick=\"post('/_sandbox/portals/'+MEMBER+'/lead',"
        "{phone: document.getElementById('lead-phone').value}).then(()=>location.reload())\">"
        "Add lead</button></section></aside>"
    )


def _home(app: PortalApp, portal: dict[str, Any], user_id: str) -> Response:
    frames: dict[str, Any] = {}
    settings = app.world.settings
    if portal["status"] == "uninstalled":
        content = "<p>The application was uninstalled.</p>"
    elif portal["installed"]:
        content = _iframe(app, portal, user_id, frames, path=settings.app_path, placement="DEFAULT")
    else:
        # The install page; the app must call BX24.installFinish() to finish (§1.1).
        content = (
            "<p><small>Installing… (ONAPPINSTALL sent; waiting for BX24.installFinish)</small></p>"
            + _iframe(app, portal, user_id, frames, path=settings.install_path, placement="DEFAULT")
            + f"<script>fetch('/_sandbox/portals/{escape(portal['member_id'])}/install-event',"
            " {method: 'POST'})</script>"
        )
    body = f"{_header(portal)}<main><section>{content}</section>{_side(portal)}</main>"
    return _page("Application", body, portal["member_id"], user_id, frames)


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
        f"<p>Phones (click to call):</p><ul>{phones}</ul>{tabs}</section>{_side(portal)}</main>"
    )
    return _page(f"Lead {lead_id}", body, portal["member_id"], user_id, frames)


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
                    }
                )
        notes = [n for n in portal["notifications"] if n["USER_ID"] == user_id][-10:]
    return {"installed": portal["installed"], "cards": cards, "notifications": notes[::-1]}
