"""The portal's people as pages show them: names and avatars from `user.get`, cached per portal.

Pages never call Bitrix24 for a name (docs/pages.md "People"): the `bitrix.users_refresh` job
reads every user (active and dismissed: a dismissed employee's old calls still need a name)
into the cache, and pages read the cache. A user the cache does not know is shown by id.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.utils import timezone

from bitrixapp.models import Portal
from integration import jobs
from integration.bitrix import client
from integration.core import inputs
from integration.models import Job

KIND_USERS_REFRESH = "bitrix.users_refresh"
USERS_CACHE_S = 24 * 3600
#: One refresh per portal per this many seconds, however often pages are opened.
REFRESH_SLOT_S = 300


def _key(portal: Portal) -> str:
    # By member_id, not pk: a row id comes back after a portal is deleted (uninstall with
    # CLEAN), and another portal must never be shown the old one's people.
    return f"bitrix-people:{portal.member_id}"


def people_get(*, portal: Portal) -> dict[int, dict[str, Any]] | None:
    """{id: {"name", "photo", "active"}} of every user read, or None until the job has run."""
    stored = cache.get(_key(portal))
    if stored is None:
        return None
    return {int(k): v for k, v in stored.items()}


def users_directory(*, portal: Portal) -> dict[int, str] | None:
    """Active users as {id: name} (what settings validate against), or None until loaded."""
    people = people_get(portal=portal)
    if people is None:
        return None
    return {uid: p["name"] for uid, p in people.items() if p.get("active", True)}


def users_directory_store(
    *, portal: Portal, users: dict[int, str], people: dict[int, dict[str, Any]] | None = None
) -> None:
    """Store the directory: `users` as active users by name, `people` with photos if known."""
    rows: dict[str, dict[str, Any]] = {
        str(k): {"name": v, "photo": "", "active": True} for k, v in users.items()
    }
    for uid, person in (people or {}).items():
        rows[str(uid)] = {"name": "", "photo": "", "active": True} | person
    cache.set(_key(portal), rows, USERS_CACHE_S)


def _person(row: dict[str, Any]) -> dict[str, Any]:
    name = " ".join(str(row.get(k) or "") for k in ("NAME", "LAST_NAME") if row.get(k)).strip()
    photo = str(row.get("PERSONAL_PHOTO") or "")
    return {
        "name": name or f"#{row['ID']}",
        # Only http(s) links become <img src>: anything else would be a script vector.
        "photo": photo if photo.startswith(("https://", "http://")) else "",
        "active": row.get("ACTIVE") not in (False, "N", "false", 0, "0"),
    }


def users_refresh(*, portal: Portal) -> dict[str, Any]:
    """Job `bitrix.users_refresh`: read all users (user.get, docs/bitrix24.md §7.4) into the
    cache. Raises the client's errors (the job retries)."""
    rows = client.list_all(portal, "user.get", {"ADMIN_MODE": True})
    # An ID that is not a bounded ASCII number is skipped (integration/core/inputs.py).
    ids = [(inputs.positive_id_or_none(r.get("ID")), r) for r in rows if isinstance(r, dict)]
    people = {uid: _person(row) for uid, row in ids if uid is not None}
    users_directory_store(portal=portal, users={}, people=people)
    return {"users": len(people)}


def users_refresh_enqueue(*, portal: Portal) -> Job:
    slot = int(timezone.now().timestamp() // REFRESH_SLOT_S)
    return jobs.job_enqueue(
        kind=KIND_USERS_REFRESH,
        key=f"{KIND_USERS_REFRESH}:{portal.pk}:{slot}",
        portal=portal,
        subject=f"portal:{portal.pk}",
    )


def person_dict(people: dict[int, dict[str, Any]] | None, user_id: int | None) -> dict[str, Any]:
    """One user as lists show them: name and photo when read, else "User <id>" (a fallback the
    page marks as such); None → empty name."""
    if not user_id:
        return {"id": None, "name": "", "photo": "", "known": False}
    person = (people or {}).get(int(user_id))
    if person is None:
        return {"id": user_id, "name": f"#{user_id}", "photo": "", "known": False}
    return {"id": user_id, "name": person["name"], "photo": person.get("photo", ""), "known": True}
