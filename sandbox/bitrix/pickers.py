"""Bitrix24's people dialogs as the sandbox portal page shows them (BX24.selectUser and
BX24.selectUsers, docs/sandbox.md "User pickers"): the page asks /portal/<M>/users.json and lets
the tester choose; the chosen people go back to the app frame over postMessage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.bitrix.methods.common import public_user

if TYPE_CHECKING:
    from sandbox.bitrix.portal import PortalApp

#: Plain JavaScript (no %-formatting): prepended to the portal page's script.
PICKER_JS = r"""
async function pickUsers(multiple) {
  const r = await fetch('/portal/' + MEMBER + '/users.json');
  const users = (await r.json()).users;
  return new Promise((resolve) => {
    const box = document.createElement('div');
    box.id = 'bx-user-picker';
    box.setAttribute('role', 'dialog');
    box.style.cssText = 'position:fixed;inset:0;background:rgba(0,0,0,.35);display:flex;' +
      'align-items:center;justify-content:center;z-index:1000';
    box.innerHTML = `<div style="background:#fff;border-radius:8px;padding:14px;min-width:260px;` +
      `max-width:90vw"><b>${multiple ? 'Select employees' : 'Select an employee'}</b>` +
      `<input id="bx-user-search" placeholder="Search" style="display:block;margin:8px 0;width:100%">` +
      `<ul id="bx-user-list" style="list-style:none;padding:0;margin:0;max-height:50vh;overflow:auto">` +
      users.map(u => `<li data-name="${esc(u.name.toLowerCase())}"><label style="display:flex;` +
        `gap:8px;align-items:center;padding:4px;cursor:pointer">` +
        `<input type="${multiple ? 'checkbox' : 'radio'}" name="bx-pick" value="${esc(u.id)}">` +
        `<img src="${esc(u._photo)}" alt="" width="24" height="24">${esc(u.name)}</label></li>`).join('') +
      `</ul><p><button id="bx-user-ok">Select</button> <button id="bx-user-cancel">Cancel</button></p></div>`;
    document.body.appendChild(box);
    const done = (value) => { box.remove(); resolve(value); };
    box.querySelector('#bx-user-search').addEventListener('input', (e) => {
      const q = e.target.value.trim().toLowerCase();
      box.querySelectorAll('#bx-user-list li').forEach(li => { li.hidden = !li.dataset.name.includes(q); });
    });
    box.querySelector('#bx-user-cancel').addEventListener('click', () => done(null));
    box.querySelector('#bx-user-ok').addEventListener('click', () => {
      const ids = [...box.querySelectorAll('input[name=bx-pick]:checked')].map(i => i.value);
      const chosen = users.filter(u => ids.includes(String(u.id)))
        .map(u => ({id: u.id, name: u.name}));
      done(chosen.length ? chosen : null);
    });
  });
}
"""


def picker_users(app: PortalApp, portal: dict[str, Any]) -> list[dict[str, Any]]:
    """What BX24.selectUser(s) hands the app per person (docs/bitrix24.md §6.3): the portal's
    active employees as {id: integer, name}; `_photo` is for the dialog only."""
    with app.store.lock:
        people = [public_user(u, app.world.bitrix_url) for u in portal["users"]]
    return [
        {
            "id": int(u["ID"]),
            "name": " ".join(p for p in (u.get("NAME"), u.get("LAST_NAME")) if p),
            # Not in Bitrix24's answer (DOC names only id and name): the dialog shows faces.
            "_photo": u.get("PERSONAL_PHOTO") or "",
        }
        for u in people
        if u.get("ACTIVE", True) and u.get("USER_TYPE", "employee") == "employee"
    ]
