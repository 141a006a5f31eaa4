"""The fallback chain, evaluated: a pure function over a snapshot of who can take a call
(docs/routing.md "The chain"). No database, no clock, no requests: every skip rule is testable
on its own.

Order (the portal's steps, overridable per user): own line → the user's backup line → the CRM
record's responsible → an available colleague of the same department (longest idle first) →
the duty line → a callback task, always last, so the chain never ends in nothing. A visited set
makes it loop-safe (Bitrix24's router does the same, docs/agents.md §1.3): nobody is tried
twice, and following backup lines (A → B → A) stops at the first repeat. Every hop is recorded
with a reason code (routing/reasons.py renders them in the reader's language).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integration.routing.models import Step

#: Reason codes of a skipped step (rendered by reasons.py).
WHY_OWN_FAILED = "own_failed"
WHY_OFF = "off"
WHY_NO_BACKUP = "no_backup"
WHY_UNMAPPED = "unmapped_line"
WHY_SELF = "self"
WHY_VISITED = "visited"
WHY_UNAVAILABLE = "unavailable"
WHY_MISSING = "missing"
WHY_NO_RECORD = "no_record"
WHY_NO_COLLEAGUE = "no_colleague"
WHY_NO_DUTY = "no_duty_line"
WHY_UNITALK_DOWN = "unitalk_down"
WHY_CHOSEN = "chosen"


@dataclass(frozen=True)
class Person:
    """A Bitrix24 user with a Unitalk line, as presence sees them now."""

    user_id: int
    line: str = ""
    name: str = ""
    available: bool = False
    #: Why not available (the presence reason or state), "" when available.
    why: str = ""
    missing: bool = False  # deleted or left in Bitrix24
    departments: tuple[int, ...] = ()
    idle_since: datetime | None = None


@dataclass(frozen=True)
class Facts:
    caller_id: int | None
    #: [(step, on)] in order: the user's override or the portal's.
    steps: list[tuple[str, bool]]
    people: dict[int, Person] = field(default_factory=dict)
    #: Every mapped line and its user.
    line_owner: dict[str, int] = field(default_factory=dict)
    #: Backup line per user (their override).
    backups: dict[int, str] = field(default_factory=dict)
    responsible_id: int | None = None
    duty_line: str = ""
    #: Why the caller's own line cannot be used ("" = it can: inbound card routing).
    own_failed: str = ""
    #: False while Unitalk itself fails: no line can dial, only the callback task is left.
    unitalk_up: bool = True


@dataclass
class Decision:
    step: str
    person: Person | None
    path: list[dict[str, Any]]

    @property
    def callback(self) -> bool:
        return self.step == Step.CALLBACK


def _hop(step: str, why: str, person: Person | None = None, **extra: Any) -> dict[str, Any]:
    hop: dict[str, Any] = {"step": step, "why": why, **extra}
    if person is not None:
        hop.update(user=person.user_id, name=person.name, line=person.line)
    return hop


class _Walk:
    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.visited: set[int] = set()
        if facts.caller_id:
            self.visited.add(facts.caller_id)
        self.path: list[dict[str, Any]] = []

    def skip(self, step: str, why: str, person: Person | None = None, **extra: Any) -> None:
        self.path.append(_hop(step, why, person, outcome="skipped", **extra))

    def usable(self, step: str, user_id: int | None, **extra: Any) -> Person | None:
        """The person if they can take the call now; else the skip is recorded."""
        person = self.facts.people.get(user_id or 0)
        if person is None:
            self.skip(step, WHY_MISSING, user=user_id, **extra)
            return None
        if person.user_id in self.visited:
            self.skip(step, WHY_SELF if person.user_id == self.facts.caller_id else WHY_VISITED,
                      person, **extra)  # fmt: skip
            return None
        self.visited.add(person.user_id)
        if person.missing:
            self.skip(step, WHY_MISSING, person, **extra)
            return None
        if not person.available:
            self.skip(step, WHY_UNAVAILABLE, person, state=person.why, **extra)
            return None
        return person

    def line_user(self, step: str, line: str) -> Person | None:
        owner = self.facts.line_owner.get(line)
        if owner is None:
            self.skip(step, WHY_UNMAPPED, line=line)
            return None
        return self.usable(step, owner)


def _own_line(walk: _Walk) -> Person | None:
    facts = walk.facts
    if facts.own_failed:
        walk.skip(Step.OWN_LINE, WHY_OWN_FAILED, trigger=facts.own_failed)
        return None
    person = facts.people.get(facts.caller_id or 0)
    if person is None:
        walk.skip(Step.OWN_LINE, WHY_MISSING, user=facts.caller_id)
        return None
    if person.missing or not person.available:
        why = WHY_MISSING if person.missing else WHY_UNAVAILABLE
        walk.skip(Step.OWN_LINE, why, person, state=person.why)
        return None
    return person


def _backup_line(walk: _Walk) -> Person | None:
    """Follow backup lines from the caller: A's backup B, B's backup C... stopping at a repeat."""
    facts = walk.facts
    current = facts.caller_id or 0
    line = facts.backups.get(current, "")
    if not line:
        walk.skip(Step.BACKUP_LINE, WHY_NO_BACKUP)
        return None
    while line:
        owner = facts.line_owner.get(line)
        if owner is None:
            walk.skip(Step.BACKUP_LINE, WHY_UNMAPPED, line=line)
            return None
        if owner in walk.visited:
            # A → B → A: the loop ends here, the chain goes on with the next step.
            person = facts.people.get(owner)
            why = WHY_SELF if owner == facts.caller_id and current == owner else WHY_VISITED
            walk.skip(Step.BACKUP_LINE, why, person, user=owner, line=line)
            return None
        person = walk.usable(Step.BACKUP_LINE, owner, line=line)
        if person is not None:
            return person
        current, line = owner, facts.backups.get(owner, "")
    return None


def _responsible(walk: _Walk) -> Person | None:
    facts = walk.facts
    if not facts.responsible_id:
        walk.skip(Step.RESPONSIBLE, WHY_NO_RECORD)
        return None
    return walk.usable(Step.RESPONSIBLE, facts.responsible_id)


def _department(walk: _Walk) -> Person | None:
    facts = walk.facts
    caller = facts.people.get(facts.caller_id or 0)
    mine = set(caller.departments) if caller else set()
    far_past = datetime.min

    def idle(person: Person) -> tuple[datetime, int]:
        since = person.idle_since.replace(tzinfo=None) if person.idle_since else far_past
        return since, person.user_id

    colleagues = sorted(
        (
            p
            for p in facts.people.values()
            if mine & set(p.departments)
            and p.user_id not in walk.visited
            and p.available
            and not p.missing
        ),
        key=idle,  # longest idle first: available since the earliest moment
    )
    if not colleagues:
        walk.skip(Step.DEPARTMENT, WHY_NO_COLLEAGUE)
        return None
    walk.visited.add(colleagues[0].user_id)
    return colleagues[0]


def _duty_line(walk: _Walk) -> Person | None:
    if not walk.facts.duty_line:
        walk.skip(Step.DUTY_LINE, WHY_NO_DUTY)
        return None
    return walk.line_user(Step.DUTY_LINE, walk.facts.duty_line)


_STEPS = {
    Step.OWN_LINE: _own_line,
    Step.BACKUP_LINE: _backup_line,
    Step.RESPONSIBLE: _responsible,
    Step.DEPARTMENT: _department,
    Step.DUTY_LINE: _duty_line,
}


def chain_evaluate(facts: Facts) -> Decision:
    """The first step that can serve, with every skipped step and why; the callback task when
    nothing can (also when the steps are all off, unknown, or Unitalk itself is down)."""
    walk = _Walk(facts)
    for step, on in facts.steps:
        if step == Step.CALLBACK:
            break
        rule = _STEPS.get(step)  # type: ignore[call-overload]
        if rule is None:
            continue  # an unknown stored step: settings validation keeps them out
        if not on:
            walk.skip(step, WHY_OFF)
            continue
        if not facts.unitalk_up:
            walk.skip(step, WHY_UNITALK_DOWN)
            continue
        person = rule(walk)
        if person is not None:
            walk.path.append(_hop(step, WHY_CHOSEN, person, outcome="chosen"))
            return Decision(step=step, person=person, path=walk.path)
    walk.path.append(_hop(Step.CALLBACK, WHY_CHOSEN, outcome="chosen"))
    return Decision(step=Step.CALLBACK, person=None, path=walk.path)
