"""What the portal web UI shows for the autodialer: a CRM page (contacts with phones, deals,
call lists made from selected contacts, item statuses, "Call" from a list) and, on a lead card,
the app's robots with a "Run robot" button and the lead's to-dos.

pages.py frames these fragments; every button posts to the portal's control API
(crmactions.py), so the page does exactly what the curl examples in docs/sandbox.md do.
"""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any

from sandbox.bitrix.methods import bizproc, calllist
from sandbox.bitrix.methods.crm import crm_store

if TYPE_CHECKING:
    from sandbox.bitrix.portal import PortalApp

SHOWN = 50

STYLE = """
.crm table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}
.crm td,.crm th{padding:2px 8px 2px 0;text-align:left;vertical-align:top}
.crm h3{margin:14px 0 4px}
.calllist{border-left:4px solid #f7a700;padding:4px 10px;margin:8px 0;background:#fffaf0}
.robots{border-top:4px solid #55d0e0;margin-top:16px}
"""

SCRIPT = """
const CRM = %(crm)s;
async function crmAction(action, body) {
  const r = await fetch('/_sandbox/portals/' + CRM.member + '/' + action,
    {method: 'POST', body: JSON.stringify(body)});
  return {ok: r.ok, data: await r.json()};
}
function crmSay(id, ok, text) {
  const el = document.getElementById(id); el.textContent = text; el.className = ok ? 'ok' : 'error';
}
const crmError = (d) => d.error_description || d.error;
const picked = () => [...document.querySelectorAll('.pick:checked')].map(b => Number(b.value));
async function addContact() {
  const phones = document.getElementById('contact-phones').value.split(',').map(p => p.trim())
    .filter(Boolean);
  const r = await crmAction('crm-item', {entity_type_id: 3, phones,
    fields: {name: document.getElementById('contact-name').value.trim()}});
  if (r.ok) location.reload(); else crmSay('crm-status', false, 'Error: ' + crmError(r.data));
}
async function addDeal() {
  const ids = picked();
  const r = await crmAction('crm-item', {entity_type_id: 2, fields: {
    title: document.getElementById('deal-title').value.trim(), contactIds: ids.slice(0, 1)}});
  if (r.ok) location.reload(); else crmSay('crm-status', false, 'Error: ' + crmError(r.data));
}
async function createCallList() {
  const r = await crmAction('calllist', {entity_type: 'CONTACT', entities: picked(), user_id: CRM.user});
  if (r.ok) location.reload(); else crmSay('crm-status', false, 'Error: ' + crmError(r.data));
}
async function setItemStatus(listId, entityId, status) {
  const r = await crmAction('calllist-status', {list_id: listId, entity_id: entityId, status});
  crmSay('crm-status', r.ok, r.ok ? 'Status of #' + entityId + ': ' + status : 'Error: ' + crmError(r.data));
}
async function dialFromList(listId, entityId) {
  const body = {list_id: listId, user_id: CRM.user};
  if (entityId) body.entity_id = entityId;
  const r = await crmAction('calllist-dial', body);
  crmSay('crm-status', r.ok, r.ok ? 'Calling ' + r.data.event.PHONE_NUMBER + ' from call list #' +
    r.data.event.CALL_LIST_ID + ' (' + r.data.call.CALL_ID + ')' : 'Error: ' + crmError(r.data));
}
function robotProps() {
  const robot = CRM.robots[document.getElementById('robot-code').value] || {properties: {}};
  document.getElementById('robot-props').innerHTML = Object.entries(robot.properties).map(
    ([name, p]) => `<label>${esc(p.NAME)}${p.REQUIRED === 'Y' ? ' *' : ''}
      <input class="robot-prop" data-name="${esc(name)}" value="${esc(p.DEFAULT ?? '')}"></label>`
  ).join('<br>');
}
async function runRobot() {
  const properties = {};
  document.querySelectorAll('.robot-prop').forEach(i => { properties[i.dataset.name] = i.value; });
  const code = document.getElementById('robot-code').value;
  const r = await crmAction('robot-run', {code, entity_type: 'LEAD', entity_id: CRM.lead, properties});
  crmSay('robot-status', r.ok, r.ok ? 'Robot ' + code + ' ran: ' + r.data.run.state +
    (r.data.run.status ? ' (HTTP ' + r.data.run.status + ')' : '') : 'Error: ' + crmError(r.data));
}
// esc() comes from the portal page's own script, which runs after this one.
window.addEventListener('DOMContentLoaded', () => {
  if (document.getElementById('robot-code')) robotProps();
});
"""


def _script(portal: dict[str, Any], user_id: str, **extra: Any) -> str:
    data = {"member": portal["member_id"], "user": user_id, "robots": {}, "lead": "", **extra}
    text = json.dumps(data).replace("</", "<\\/")
    return f"<script>{SCRIPT % {'crm': text}}</script>"


def _phones(record: dict[str, Any]) -> str:
    return ", ".join(escape(p["VALUE"]) for p in record.get("PHONE") or []) or "<small>none</small>"


def _name(record: dict[str, Any]) -> str:
    return escape(f"{record.get('NAME', '')} {record.get('LAST_NAME', '')}".strip()
                  or record.get("TITLE") or f"#{record['ID']}")  # fmt: skip


def crm_body(app: PortalApp, portal: dict[str, Any], user_id: str) -> str:
    """The CRM page: contacts, deals, call lists (list id, items, statuses, Call buttons)."""
    with app.store.lock:
        contacts = crm_store(portal, "CONTACT")
        deals = list(crm_store(portal, "DEAL").values())[-SHOWN:]
        lists = list(calllist.call_lists(portal).values())[-10:]
        rows = "".join(
            f"<tr data-id='{escape(c['ID'])}'><td><input type='checkbox' class='pick' "
            f"value='{escape(c['ID'])}'></td><td>#{escape(c['ID'])}</td><td>{_name(c)}</td>"
            f"<td>{_phones(c)}</td></tr>"
            for c in list(contacts.values())[-SHOWN:]
        )
        deal_rows = "".join(
            f"<tr><td>#{escape(d['ID'])}</td><td>{escape(d['TITLE'])}</td>"
            f"<td>{escape(d.get('STAGE_ID', ''))}</td><td>"
            + ", ".join(f"#{escape(c)}" for c in d.get("CONTACT_IDS") or [])
            + "</td></tr>"
            for d in deals
        )
        panels = "".join(_calllist_panel(portal, found, contacts) for found in reversed(lists))
        total = len(contacts)
    return (
        f"<div class='crm' id='crm'><style>{STYLE}</style><h2>CRM</h2>"
        f"<h3>Contacts <small>({total} in all; the last {SHOWN} shown)</small></h3>"
        "<input id='contact-name' placeholder='Name'> "
        "<input id='contact-phones' size='34' placeholder='+380501112233, +380671234567'> "
        "<button id='contact-add' onclick='addContact()'>Add contact</button>"
        "<table id='contacts'><tr><th></th><th>ID</th><th>Name</th><th>Phones</th></tr>"
        f"{rows}</table>"
        "<button id='calllist-create' onclick='createCallList()'>Create call list from selected"
        "</button> <input id='deal-title' placeholder='Deal title'> "
        "<button id='deal-add' onclick='addDeal()'>Add deal for the first selected</button>"
        "<div id='crm-status'></div>"
        "<h3>Deals</h3><table id='deals'><tr><th>ID</th><th>Title</th><th>Stage</th>"
        f"<th>Contacts</th></tr>{deal_rows}</table>"
        f"<h3>Call lists</h3>{panels or '<small>No call lists yet</small>'}</div>"
        + _script(portal, user_id)
    )


def _calllist_panel(portal: dict[str, Any], found: dict[str, Any], contacts: dict[str, Any]) -> str:
    store = contacts if found["ENTITY_TYPE"] == "CONTACT" else crm_store(portal, "COMPANY")
    list_id = escape(found["ID"])
    rows = ""
    for item in found["ITEMS"]:
        record = store.get(item["ELEMENT_ID"])
        element = escape(item["ELEMENT_ID"])
        options = "".join(
            f"<option{' selected' if s == item['STATUS'] else ''}>{s}</option>"
            for s in calllist.STATUS_IDS
        )
        rows += (
            f"<tr data-entity='{element}'><td>#{element}</td>"
            f"<td>{_name(record) if record else '<small>deleted</small>'}</td>"
            f"<td>{_phones(record) if record else ''}</td><td><select class='item-status' "
            f'onchange="setItemStatus({list_id},{element},this.value)">{options}</select></td>'
            f"<td><button class='dial' onclick='dialFromList({list_id},{element})'>Call</button>"
            f"</td><td><small>{escape(item['CALL_ID'] or '')}</small></td></tr>"
        )
    return (
        f"<div class='calllist' data-list-id='{list_id}'><b>Call list #{list_id}</b> "
        f"<small>{escape(found['ENTITY_TYPE'])}, {len(found['ITEMS'])} items</small> "
        f"<button class='dial-next' onclick='dialFromList({list_id})'>Dial next</button>"
        f"<table>{rows}</table></div>"
    )


def _title(name: Any) -> str:
    if isinstance(name, dict):
        return str(name.get("en") or next(iter(name.values()), ""))
    return str(name)


def lead_panel(app: PortalApp, portal: dict[str, Any], user_id: str, lead_id: str) -> str:
    """On a lead card: the app's robots and "Run robot", recent runs, the lead's to-dos."""
    with app.store.lock:
        robots: dict[str, dict[str, Any]] = {
            code: {"name": _title(r["NAME"]), "properties": {
                name: {"NAME": _title(p.get("NAME")), "DEFAULT": p.get("DEFAULT"),
                       "REQUIRED": p.get("REQUIRED")}
                for name, p in r["PROPERTIES"].items()}}
            for code, r in bizproc.robots(portal).items()
        }  # fmt: skip
        document = f"LEAD_{lead_id}"
        runs = [r for r in bizproc.robot_runs(portal) if r["document_id"][2] == document][-5:]
        todos = [
            a for a in portal["activities"].values()
            if a.get("PROVIDER_ID") == "CRM_TODO" and a["OWNER_TYPE_ID"] == "1"
            and a["OWNER_ID"] == lead_id
        ]  # fmt: skip
    options = "".join(
        f"<option value='{escape(code)}'>{escape(r['name'])} ({escape(code)})</option>"
        for code, r in robots.items()
    )
    run_rows = "".join(
        f"<tr><td>#{r['id']}</td><td>{escape(r['code'])}</td><td>{escape(r['state'])}</td>"
        f"<td>{escape(str(r['status'] or ''))}</td>"
        f"<td><small>{escape(json.dumps(r['return_values']))}</small></td></tr>"
        for r in reversed(runs)
    )
    todo_rows = "".join(
        f"<li>{escape(a['SUBJECT'] or '(no title)')} <small>due {escape(a['DEADLINE'])}, "
        f"user {escape(a['RESPONSIBLE_ID'])}</small></li>"
        for a in todos
    )
    controls = (
        f"<select id='robot-code' onchange='robotProps()'>{options}</select>"
        "<div id='robot-props'></div>"
        "<button id='robot-run' onclick='runRobot()'>Run robot on this lead</button>"
        if robots
        else "<p><small>No robots: the app registers them with bizproc.robot.add.</small></p>"
    )
    return (
        f"<section class='robots crm' id='robot-panel'><style>{STYLE}</style>"
        f"<h3>Automation rules (robots)</h3>{controls}<div id='robot-status'></div>"
        "<table id='robot-runs'><tr><th>Run</th><th>Robot</th><th>State</th><th>HTTP</th>"
        f"<th>Returned</th></tr>{run_rows}</table>"
        f"<h3>To-dos</h3><ul id='todos'>{todo_rows or '<li><small>none</small></li>'}</ul>"
        "</section>" + _script(portal, user_id, robots=robots, lead=lead_id)
    )
