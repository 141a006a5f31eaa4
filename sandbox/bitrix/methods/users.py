"""The `user` and `department` scopes: `profile`, `user.current`, `user.admin`, `user.get`,
`department.get` (docs/bitrix24.md §7.4, docs/agents.md §1.4).
"""

from __future__ import annotations

from typing import Any

from sandbox.bitrix.methods.common import matches, public_user
from sandbox.bitrix.rest import Call, method, paged


def departments(portal: dict[str, Any]) -> list[dict[str, Any]]:
    """The portal's departments; one root department headed by user 1 unless changed."""
    return portal.setdefault(
        "departments", [{"ID": "1", "NAME": "Sandbox company", "SORT": 500, "UF_HEAD": "1"}]
    )


@method("profile")
def profile(call: Call) -> Any:
    user = call.user
    return {
        "ID": user["ID"],
        "ADMIN": user["ADMIN"],
        "NAME": user["NAME"],
        "LAST_NAME": user["LAST_NAME"],
        "PERSONAL_GENDER": "",
        "TIME_ZONE": "",
        "TIME_ZONE_OFFSET": 0,
    }


@method("user.current")
def user_current(call: Call) -> Any:
    return public_user(call.user)


@method("user.admin")
def user_admin(call: Call) -> Any:
    return bool(call.user["ADMIN"])


def _in_list(flt: dict[str, Any], entity: dict[str, Any]) -> bool:
    """The `@FIELD` (in) and `!@FIELD` (not in) prefixes, which `matches` does not read."""
    for key, wanted in flt.items():
        if not key.lstrip("!").startswith("@"):
            continue
        values = wanted if isinstance(wanted, list) else str(wanted).split(",")
        inside = str(entity.get(key.lstrip("!@").upper())) in [str(v).strip() for v in values]
        if inside == key.startswith("!"):
            return False
    return True


@method("user.get")
def user_get(call: Call) -> Any:
    # Deactivated users are listed too unless FILTER {ACTIVE: true} (docs/agents.md §1.4).
    flt = call.get("FILTER") or call.get("filter") or {}
    if not isinstance(flt, dict):
        flt = {}
    if call.get("ID") is not None:
        flt = {**flt, "ID": call.get("ID")}
    plain = {k: v for k, v in flt.items() if not k.lstrip("!").startswith("@")}
    department = plain.pop("UF_DEPARTMENT", None)
    users = [
        u
        for u in call.portal["users"]
        if matches(public_user(u), plain)
        and _in_list(flt, public_user(u))
        and (department is None or str(department) in map(str, public_user(u)["UF_DEPARTMENT"]))
    ]
    return paged([public_user(u, call.world.bitrix_url) for u in users], call)


@method("department.get")
def department_get(call: Call) -> Any:
    """Filter by `ID`, `NAME`, `SORT`, `PARENT`, `UF_HEAD` (top-level parameters, as DOC
    `api-reference/departments/department-get.md`), `sort`/`order`, 50 per page.
    """
    fields = ("ID", "NAME", "SORT", "PARENT", "UF_HEAD")
    # A department without a head has no UF_HEAD at all (DOC example answer).
    items = [
        {k: v for k, v in d.items() if k != "UF_HEAD" or v not in ("", "0", None)}
        for d in departments(call.portal)
    ]
    for name in fields:
        # Upper-case filter keys only: `call.get` ignores case, and `sort`/`order` are lower.
        wanted = call.params.get(name)
        if wanted not in (None, ""):
            items = [d for d in items if str(d.get(name, "")) == str(wanted)]
    sort = str(call.get("sort") or "SORT").upper()
    if sort not in fields:
        sort = "SORT"
    descending = str(call.get("order") or "ASC").upper() == "DESC"

    def key(d: dict[str, Any]) -> Any:
        value = d.get(sort, "")
        text = str(value if value is not None else "")
        return (0, int(text), "") if text.isdigit() else (1, 0, text)

    items.sort(key=key, reverse=descending)
    return paged(items, call)
