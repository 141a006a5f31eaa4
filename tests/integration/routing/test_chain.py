"""The chain's skip rules, one per test, and its loop safety (integration/routing/chain.py,
docs/routing.md "The chain"). Pure: no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from integration.routing import chain
from integration.routing.chain import Facts, Person
from integration.routing.models import DEFAULT_STEPS, Step

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
ALL_ON = [(step, True) for step in DEFAULT_STEPS]


def person(uid: int, *, available: bool = True, dept: int = 1, idle_min: int = 0, **kw) -> Person:
    return Person(
        user_id=uid,
        line=str(100 + uid),
        name=f"User {uid}",
        available=available,
        why="" if available else kw.pop("why", "break"),
        departments=(dept,),
        idle_since=NOW - timedelta(minutes=idle_min) if available else None,
        **kw,
    )


def facts(*people: Person, steps=None, **kw) -> Facts:
    return Facts(
        caller_id=kw.pop("caller_id", 1),
        steps=steps if steps is not None else ALL_ON,
        people={p.user_id: p for p in people},
        line_owner={p.line: p.user_id for p in people},
        own_failed=kw.pop("own_failed", "no_line"),
        **kw,
    )


def skipped(decision) -> dict[str, str]:
    return {h["step"]: h["why"] for h in decision.path if h["outcome"] == "skipped"}


def test_own_line_is_skipped_with_the_reason_it_failed():
    decision = chain.chain_evaluate(facts(person(1), person(2)))
    assert decision.path[0] == {
        "step": Step.OWN_LINE, "why": chain.WHY_OWN_FAILED, "outcome": "skipped",
        "trigger": "no_line",
    }  # fmt: skip


def test_own_line_serves_when_it_works_and_the_caller_is_available():
    decision = chain.chain_evaluate(facts(person(1), own_failed=""))
    assert (decision.step, decision.person.user_id) == (Step.OWN_LINE, 1)


def test_backup_line_serves_when_its_owner_is_available():
    decision = chain.chain_evaluate(facts(person(1), person(2), person(3), backups={1: "103"}))
    assert (decision.step, decision.person.user_id) == (Step.BACKUP_LINE, 3)


def test_backup_line_not_set_is_skipped():
    decision = chain.chain_evaluate(facts(person(1), person(2)))
    assert skipped(decision)[Step.BACKUP_LINE] == chain.WHY_NO_BACKUP


def test_backup_line_mapped_to_nobody_is_skipped_as_unmapped():
    decision = chain.chain_evaluate(facts(person(1), person(2), backups={1: "999"}))
    assert skipped(decision)[Step.BACKUP_LINE] == chain.WHY_UNMAPPED
    assert decision.person.user_id == 2  # the department colleague takes it


def test_backup_line_of_a_deleted_user_is_skipped_as_missing():
    gone = person(3, missing=True)
    decision = chain.chain_evaluate(facts(person(1), gone, backups={1: "103"}, steps=[
        (Step.OWN_LINE, True), (Step.BACKUP_LINE, True), (Step.CALLBACK, True)]))  # fmt: skip
    assert skipped(decision)[Step.BACKUP_LINE] == chain.WHY_MISSING
    assert decision.callback


def test_backup_owner_unavailable_follows_their_backup_line():
    decision = chain.chain_evaluate(
        facts(person(1), person(2, available=False), person(3), backups={1: "102", 2: "103"})
    )
    assert (decision.step, decision.person.user_id) == (Step.BACKUP_LINE, 3)
    assert [h.get("user") for h in decision.path if h["step"] == Step.BACKUP_LINE] == [2, 3]


def test_a_backup_loop_a_b_a_stops_at_the_repeat_and_goes_on():
    only = [(Step.OWN_LINE, True), (Step.BACKUP_LINE, True), (Step.CALLBACK, True)]
    decision = chain.chain_evaluate(
        facts(person(1), person(2, available=False), backups={1: "102", 2: "101"}, steps=only)
    )
    whys = [h["why"] for h in decision.path if h["step"] == Step.BACKUP_LINE]
    assert whys == [chain.WHY_UNAVAILABLE, chain.WHY_VISITED]
    assert decision.callback


def test_a_longer_loop_visits_nobody_twice():
    people = [person(1), person(2, available=False), person(3, available=False)]
    decision = chain.chain_evaluate(facts(*people, backups={1: "102", 2: "103", 3: "102"}))
    tried = [h.get("user") for h in decision.path if h["step"] == Step.BACKUP_LINE]
    assert tried == [2, 3, 2]  # the repeat is recorded as the loop, never tried again
    last_backup = [h for h in decision.path if h["step"] == Step.BACKUP_LINE][-1]
    assert last_backup["why"] == chain.WHY_VISITED


def test_responsible_serves_when_another_user_and_available():
    decision = chain.chain_evaluate(facts(person(1), person(2), person(5), responsible_id=5))
    assert (decision.step, decision.person.user_id) == (Step.RESPONSIBLE, 5)


def test_responsible_who_is_the_caller_is_skipped():
    decision = chain.chain_evaluate(facts(person(1), person(2), responsible_id=1))
    assert skipped(decision)[Step.RESPONSIBLE] == chain.WHY_SELF


def test_responsible_unavailable_is_skipped_with_their_state():
    decision = chain.chain_evaluate(
        facts(person(1), person(2), person(5, available=False, why="day_closed"), responsible_id=5)
    )
    hop = next(h for h in decision.path if h["step"] == Step.RESPONSIBLE)
    assert (hop["why"], hop["state"]) == (chain.WHY_UNAVAILABLE, "day_closed")


def test_no_crm_record_skips_the_responsible():
    decision = chain.chain_evaluate(facts(person(1), person(2)))
    assert skipped(decision)[Step.RESPONSIBLE] == chain.WHY_NO_RECORD


def test_responsible_without_a_line_is_skipped_as_missing():
    decision = chain.chain_evaluate(facts(person(1), person(2), responsible_id=77))
    assert skipped(decision)[Step.RESPONSIBLE] == chain.WHY_MISSING


def test_department_gives_the_longest_idle_available_colleague():
    people = [person(1), person(2, idle_min=3), person(3, idle_min=40), person(4, idle_min=90,
              dept=2)]  # fmt: skip
    decision = chain.chain_evaluate(facts(*people))
    assert (decision.step, decision.person.user_id) == (Step.DEPARTMENT, 3)


def test_department_skips_unavailable_and_other_departments():
    people = [person(1), person(2, available=False), person(3, dept=9)]
    decision = chain.chain_evaluate(facts(*people))
    assert skipped(decision)[Step.DEPARTMENT] == chain.WHY_NO_COLLEAGUE


def test_duty_line_serves_after_the_department():
    people = [person(1), person(7, dept=5)]
    decision = chain.chain_evaluate(facts(*people, duty_line="107"))
    assert (decision.step, decision.person.user_id) == (Step.DUTY_LINE, 7)


def test_duty_line_unmapped_or_unset_is_skipped():
    assert skipped(chain.chain_evaluate(facts(person(1))))[Step.DUTY_LINE] == chain.WHY_NO_DUTY
    decision = chain.chain_evaluate(facts(person(1), duty_line="555"))
    assert skipped(decision)[Step.DUTY_LINE] == chain.WHY_UNMAPPED


def test_duty_line_owner_already_tried_is_not_tried_again():
    people = [person(1), person(2, available=False, dept=5)]
    decision = chain.chain_evaluate(facts(*people, responsible_id=2, duty_line="102"))
    assert skipped(decision)[Step.DUTY_LINE] == chain.WHY_VISITED


def test_a_step_turned_off_is_skipped_as_off():
    steps = [(s, s != Step.DEPARTMENT) for s in DEFAULT_STEPS]
    decision = chain.chain_evaluate(facts(person(1), person(2), steps=steps))
    assert skipped(decision)[Step.DEPARTMENT] == chain.WHY_OFF
    assert decision.callback


def test_every_step_off_ends_in_the_callback_task():
    steps = [(s, s == Step.CALLBACK) for s in DEFAULT_STEPS]
    decision = chain.chain_evaluate(facts(person(1), person(2), steps=steps))
    assert decision.callback
    assert decision.person is None
    assert set(skipped(decision).values()) == {chain.WHY_OFF}


def test_no_steps_at_all_still_end_in_the_callback_task():
    decision = chain.chain_evaluate(facts(person(1), steps=[]))
    assert decision.callback
    assert decision.path[-1]["step"] == Step.CALLBACK


def test_unitalk_down_skips_every_dialing_step():
    decision = chain.chain_evaluate(facts(person(1), person(2), unitalk_up=False))
    assert decision.callback
    assert set(skipped(decision).values()) == {chain.WHY_UNITALK_DOWN}


def test_the_callback_task_is_always_last_and_chosen():
    decision = chain.chain_evaluate(facts(person(1)))
    assert decision.path[-1] == {"step": Step.CALLBACK, "why": chain.WHY_CHOSEN,
                                 "outcome": "chosen"}  # fmt: skip
