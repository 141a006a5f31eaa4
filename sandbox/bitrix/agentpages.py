"""The portal's Agents page (`/portal/<M>/agents/`): every user with their work day (as
timeman.status reads it), online and active flags, time tracking, departments and heads, with a
button for each thing an employee or admin does in a real portal; the portal clock with "+1 h"
and "next day" so a day can expire; the time-tracking module switch.

pages.py frames the fragment; every button posts to the portal's control API
(agentactions.py), so the page does exactly what the curl examples in docs/sandbox.md do.
"""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any

from sandbox.bitrix.methods import timeman
from sandbox.bitrix.methods.users import departments

if TYPE_CHECKING:
    from sandbox.bitrix.portal import PortalApp

STYLE = """
.agents table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}
.agents td,.agents th{padding:3px 8px 3px 0;text-align:left;vertical-align:top}
.agents h3{margin:14px 0 4px}
.day{font-weight:600;padding:1px 6px;border-radius:4px;background:#eee}
.day-OPENED{background:#d9f5d0}.day-PAUSED{background:#fff1c2}
.day-EXPIRED{background:#ffd6d6}.day-CLOSED{background:#e4e4e4}
.agents tr.inactive td{color:#999}
.agents button{font-size:12px;margin:0 2px 2px 0}
"""

SCRIPT = """
const AGENTS = %(agents)s;
async function agentAction(action, body) {
  const r = await fetch('/_sandbox/portals/' + AGENTS.member + '/' + action,
    {method: 'POST', body: JSON.stringify(body)});
  const data = await r.json();
  if (r.ok) { location.reload(); return; }
  const el = document.getElementById('agents-status');
  el.textContent = 'Error: ' + (data.error_description || data.error); el.className = 'error';
}
const workday = (user, op) => agentAction('workday', {user_id: user, op});
const userState = (user, body) => agentAction('user-state', {user_id: user, ...body});
function makeHead(user) {
  agentAction('department', {id: document.getElementById('head-of-' + user).value, head: user});
}
"""


def _script(portal: dict[str, Any]) -> str:
    text = json.dumps({"member": portal["member_id"]}).replace("</", "<\\/")
    return f"<script>{SCRIPT % {'agents': text}}</script>"


def _button(label: str, onclick: str, cls: str) -> str:
    return f"<button class='{cls}' onclick=\"{escape(onclick)}\">{escape(label)}</button>"


def _actions(user: dict[str, Any], status: str, settings: dict[str, Any]) -> str:
    uid = json.dumps(user["ID"])
    buttons = []
    if status == "CLOSED":
        buttons.append(_button("Clock in", f"workday({uid}, 'open')", "open"))
    if status == "OPENED":
        buttons.append(_button("Pause", f"workday({uid}, 'pause')", "pause"))
    if status == "PAUSED":
        buttons.append(_button("Resume", f"workday({uid}, 'reopen')", "reopen"))
    if status != "CLOSED":
        buttons.append(_button("Clock out", f"workday({uid}, 'close')", "close"))
    online = user.get("IS_ONLINE", "Y") == "Y"
    buttons.append(
        _button(
            "Go offline" if online else "Come online",
            f"userState({uid}, {{online: {json.dumps(not online)}}})",
            "online",
        )
    )
    buttons.append(
        _button(
            "Deactivate" if user["ACTIVE"] else "Activate",
            f"userState({uid}, {{active: {json.dumps(not user['ACTIVE'])}}})",
            "active",
        )
    )
    tracking = bool(settings["UF_TIMEMAN"])
    buttons.append(
        _button(
            "Time tracking off" if tracking else "Time tracking on",
            f"userState({uid}, {{timeman: {json.dumps(not tracking)}}})",
            "tracking",
        )
    )
    return "".join(buttons)


def agents_body(app: PortalApp, portal: dict[str, Any], user_id: str) -> str:
    """The Agents page fragment (read under the store lock, rendered from copies)."""
    with app.store.lock:
        state = timeman.tm_state(portal)
        clock = timeman.atom(timeman.now(portal), int(state["tz_offset"]))
        installed = bool(state["installed"])
        depts = [dict(d) for d in departments(portal)]
        rows = []
        for user in portal["users"]:
            day = timeman.answer(portal, user["ID"])
            settings = timeman.user_settings(portal, user["ID"])
            rows.append((dict(user), day, settings, timeman.search_status(portal, user["ID"])))
    heads = {d["UF_HEAD"]: d["NAME"] for d in depts}
    names = {str(d["ID"]): d["NAME"] for d in depts}
    options = "".join(
        f"<option value='{escape(d['ID'])}'>{escape(d['NAME'])}</option>" for d in depts
    )
    body = []
    for user, day, settings, seen in rows:
        uid = escape(user["ID"])
        inner = escape(user.get("UF_PHONE_INNER") or "—")
        since = escape(day["TIME_START"] or "—")
        units = ", ".join(
            escape(names.get(str(d), f"#{d}")) for d in user.get("UF_DEPARTMENT", [1])
        )
        head = f" <small>head of {escape(heads[user['ID']])}</small>" if user["ID"] in heads else ""
        body.append(
            f"<tr data-user='{uid}' class='{'' if user['ACTIVE'] else 'inactive'}'>"
            f"<td>#{uid}</td><td>{escape(user['NAME'])} {escape(user['LAST_NAME'])}{head}</td>"
            f"<td>{inner}</td><td><span class='day day-{escape(day['STATUS'])}'>"
            f"{escape(day['STATUS'])}</span></td><td class='since'>{since}</td>"
            f"<td>{escape(day['TIME_LEAKS'])}</td><td class='search'>{escape(seen)}</td>"
            f"<td class='is-online'>{escape(user.get('IS_ONLINE', 'Y'))}</td>"
            f"<td class='is-active'>{'Y' if user['ACTIVE'] else 'N'}</td>"
            f"<td>{'on' if settings['UF_TIMEMAN'] else 'off'}"
            f"{', free' if settings['UF_TM_FREE'] else ''}</td><td>{units}</td>"
            f"<td>{_actions(user, day['STATUS'], settings)}"
            f"<select id='head-of-{uid}'>{options}</select>"
            f"{_button('Make head', 'makeHead(' + json.dumps(user['ID']) + ')', 'head')}</td></tr>"
        )
    module = (
        _button(
            "Uninstall time tracking", "agentAction('timeman-module', {installed: false})", "module"
        )
        if installed
        else _button(
            "Install time tracking", "agentAction('timeman-module', {installed: true})", "module"
        )
    )
    return (
        f"<div class='agents' id='agents'><style>{STYLE}</style><h2>Agents</h2>"
        f"<p>Portal clock <b id='portal-clock'>{escape(clock)}</b> "
        + _button("+1 hour", "agentAction('clock', {shift_seconds: 3600})", "clock-hour")
        + _button("Next day", "agentAction('clock', {shift_days: 1})", "clock-day")
        + _button("Real time", "agentAction('clock', {reset: true})", "clock-reset")
        + f" · time tracking module: <b id='timeman-module'>{'installed' if installed else 'not installed'}"
        f"</b> {module}</p><div id='agents-status'></div>"
        "<table id='agent-table'><tr><th>ID</th><th>User</th><th>Inner</th><th>Work day</th>"
        "<th>Since</th><th>Breaks</th><th>searchCrmEntities</th><th>Online</th><th>Active</th>"
        "<th>Time tracking</th><th>Departments</th><th></th></tr>"
        + "".join(body)
        + "</table></div>"
        + _script(portal)
    )
