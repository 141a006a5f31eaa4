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

# Unitalk's side as sandbox/unitalk/operators.py and app.py DEFAULT_SETTINGS define it, repeated
# because bitrix/ and unitalk/ never import each other (docs/sandbox.md); a test keeps them equal.
DEFAULT_UNITALK = {"status_api": False, "status_api_fault": ""}
OPERATOR_STATUSES = ("ONLINE", "PAUSE", "OFFLINE")
OPERATOR_DEFAULT = "ONLINE"
OPERATOR_FAULTS = ("", "error", "500", "502", "503", "timeout", "slow")
LINE_STATES = ("registered", "unregistered", "dnd")  # sandbox/unitalk/lines.py
OPERATOR_OUTCOMES = ("answer", "noanswer", "busy", "chanunavail")
BUSY_MODES = ("allow", "reject", "busy_leg")
DEFAULT_LINES = {"operator_outcome": "answer", "busy_mode": "allow", "answer_lost": 0.0}

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
// Unitalk's side (its control API, CORS *): unitalk() comes from the portal page's script.
async function operatorApi(body) {
  const r = await unitalk('settings', {api_key: AGENTS.key, ...body});
  if (r.ok) { location.reload(); return; }
  const el = document.getElementById('agents-status');
  el.textContent = 'Error: ' + r.data.error; el.className = 'error';
}
async function lineState(line, state) {
  const r = await unitalk('lines', {api_key: AGENTS.key, line, state});
  if (r.ok) location.reload();
}
function lineKnobs() {
  operatorApi({operator_outcome: document.getElementById('operator-outcome').value,
    busy_mode: document.getElementById('busy-mode').value,
    answer_lost: document.getElementById('answer-lost').checked ? 1 : 0});
}
async function operatorStatus(number, status) {
  const r = await unitalk('operator-status', {api_key: AGENTS.key, number, status});
  if (r.ok) location.reload();
}
"""


def _script(portal: dict[str, Any], key: str) -> str:
    text = json.dumps({"member": portal["member_id"], "key": key}).replace("</", "<\\/")
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
        + "</table>"
        + _operator_panel(app)
        + _lines_panel(app)
        + "</div>"
        + _script(portal, _project(app).get("api_key", ""))
    )


def _project(app: PortalApp) -> dict[str, Any]:
    with app.store.lock:
        projects = list(app.store.data["unitalk"]["projects"].values())
        return dict(projects[0]) if projects else {}


def _operator_panel(app: PortalApp) -> str:
    """Unitalk's UNCONFIRMED operator-status API for the first key: the switch, the fault knob,
    each line's status with the cabinet's buttons (sandbox/unitalk/operators.py).
    """
    project = _project(app)
    if not project:
        return ""
    with app.store.lock:
        settings = {**DEFAULT_UNITALK, **app.store.data["unitalk"].get("settings", {})}
        settings.update(project.get("settings", {}))
        stored = dict(project.get("operator_status") or {})
        current = {
            str(u["line"]): stored.get(str(u["line"]), OPERATOR_DEFAULT)
            for u in project["users"]
            if u.get("line")
        }
    enabled = bool(settings["status_api"])
    fault = str(settings["status_api_fault"] or "")
    switch = _button(
        "Switch off" if enabled else "Switch on",
        f"operatorApi({{status_api: {json.dumps(not enabled)}}})",
        "status-api",
    )
    faults = "".join(
        f"<option value='{f}'{' selected' if f == fault else ''}>{f or 'no fault'}</option>"
        for f in OPERATOR_FAULTS
    )
    rows = "".join(
        f"<tr data-line='{escape(line)}'><td>{escape(line)}</td>"
        f"<td class='operator-status'>{escape(status)}</td><td>"
        + "".join(
            _button(value, f"operatorStatus({json.dumps(line)}, {json.dumps(value)})", "op-set")
            for value in OPERATOR_STATUSES
        )
        + "</td></tr>"
        for line, status in current.items()
    )
    return (
        "<h3>Unitalk operator status API <small>(UNCONFIRMED: may not exist)</small></h3>"
        f"<p>API: <b id='status-api'>{'on' if enabled else 'absent'}</b> {switch} · fault "
        f"<select id='status-api-fault'>{faults}</select> "
        + _button(
            "Set fault",
            "operatorApi({status_api_fault: document.getElementById('status-api-fault').value})",
            "status-fault",
        )
        + "</p><table id='operator-table'><tr><th>Line</th><th>Status</th><th></th></tr>"
        + rows
        + "</table>"
    )


def _options(choices: tuple[str, ...], selected: str) -> str:
    return "".join(
        f"<option value='{c}'{' selected' if c == selected else ''}>{c}</option>" for c in choices
    )


def _lines_panel(app: PortalApp) -> str:
    """Unitalk's lines for issue 15 (sandbox/unitalk/lines.py): each line registered,
    unregistered or DND, how operator legs end, what a busy line does, lost directCall answers.
    """
    project = _project(app)
    if not project:
        return ""
    with app.store.lock:
        settings = {**DEFAULT_LINES, **app.store.data["unitalk"].get("settings", {})}
        settings.update(project.get("settings", {}))
        states = dict(project.get("line_state") or {})
        known = [str(u["line"]) for u in project["users"] if u.get("line")]
    rows = "".join(
        f"<tr data-line='{escape(line)}'><td>{escape(line)}</td>"
        f"<td class='line-state'>{escape(states.get(line, 'registered'))}</td><td>"
        + "".join(
            _button(state, f"lineState({json.dumps(line)}, {json.dumps(state)})", "line-set")
            for state in LINE_STATES
        )
        + "</td></tr>"
        for line in known
    )
    lost = " checked" if float(settings["answer_lost"]) >= 1 else ""
    return (
        "<h3>Unitalk lines <small>(registration, operator leg, busy lines; UNCONFIRMED)</small>"
        "</h3><table id='line-table'><tr><th>Line</th><th>State</th><th></th></tr>"
        + rows
        + "</table><p>Operator leg "
        f"<select id='operator-outcome'>{_options(OPERATOR_OUTCOMES, settings['operator_outcome'])}"
        f"</select> · busy line <select id='busy-mode'>"
        f"{_options(BUSY_MODES, settings['busy_mode'])}</select> · "
        f"<label><input type='checkbox' id='answer-lost'{lost}> lose directCall answers</label> "
        + _button("Apply", "lineKnobs()", "line-knobs")
        + "</p>"
    )
