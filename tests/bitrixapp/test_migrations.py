"""Data migrations keep stored rows working (bitrixapp 0004: event dedupe keys become hashes)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bitrixapp import services

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("bitrixapp", "0003_portal_options")]
AFTER = [("bitrixapp", "0004_event_dedupe_key_hash")]


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.fixture(autouse=True)
def _full_schema_afterwards():
    # Rolling bitrixapp back also unapplies every migration that depends on it: leave the
    # database fully migrated for the tests that run next (e2e stacks share it).
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_old_dedupe_keys_are_rewritten_so_a_repeat_is_still_recognised():
    # given: an event stored before the upgrade, under the old cut key
    old = _migrate(BEFORE)
    portal = old.get_model("bitrixapp", "Portal").objects.create(
        member_id="m-migrate",
        domain="a.bitrix24.com",
        client_endpoint="https://a.bitrix24.com/rest/",
    )
    call_id = "externalCall." + "x" * 300
    old.get_model("bitrixapp", "BitrixEvent").objects.create(
        portal=portal,
        event="ONEXTERNALCALLSTART",
        dedupe_key=f"m-migrate:ONEXTERNALCALLSTART:{call_id}"[:255],
        data={"CALL_ID": call_id},
        ts="1773236988",
    )
    # when
    new = _migrate(AFTER)
    # then: the row carries the key today's code computes for the same event
    row = new.get_model("bitrixapp", "BitrixEvent").objects.get()
    assert row.dedupe_key == services.dedupe_key(
        member_id="m-migrate",
        event="ONEXTERNALCALLSTART",
        data={"CALL_ID": call_id},
        ts="1773236988",
    )
