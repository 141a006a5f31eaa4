"""Event dedupe keys become a hash of the whole identity (issue 11 item 7).

Keys used to be `<member_id>:<EVENT>:<CALL_ID>` cut at 255 characters, so two CALL_IDs that
differ only after the cut were one event. Stored keys are rewritten in the new form, so an
event received before the upgrade is still recognised when Bitrix24 posts it again.
The key function is copied here (migrations must not follow later code changes).
"""

import hashlib
import json

from django.db import migrations


def _key(member_id, event, data, ts):
    data = data if isinstance(data, dict) else {}
    call_id = str(data.get("CALL_ID") or "")
    if call_id:
        identity = {"member": member_id, "event": event, "call_id": call_id}
    else:
        identity = {"event": event, "data": data, "ts": ts, "member": member_id}
    canonical = json.dumps(identity, sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def rewrite(apps, schema_editor):
    BitrixEvent = apps.get_model("bitrixapp", "BitrixEvent")
    rows = BitrixEvent.objects.filter(portal__isnull=False).select_related("portal")
    batch = []
    for row in rows.iterator(chunk_size=500):
        # `ts` was stored cut to 32 characters and "" for a missing one, as it was hashed.
        row.dedupe_key = _key(row.portal.member_id, row.event, row.data, row.ts or None)
        batch.append(row)
        if len(batch) >= 500:
            BitrixEvent.objects.bulk_update(batch, ["dedupe_key"])
            batch = []
    if batch:
        BitrixEvent.objects.bulk_update(batch, ["dedupe_key"])


class Migration(migrations.Migration):
    dependencies = [("bitrixapp", "0003_portal_options")]

    operations = [migrations.RunPython(rewrite, migrations.RunPython.noop)]
