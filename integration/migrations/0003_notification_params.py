"""Notifications store a message code (`kind`) and parameters; the sentence is rendered when read.

Existing rows get the parameters their English text and context held, so open banners are
shown in the reader's language after the upgrade (integration/core/messages.py).
"""

import re

from django.db import migrations, models

_KEY = re.compile(r"\*{4}\S{1,4}")
_PHONE = re.compile(r"\+?\d{5,}")
_USER = re.compile(r"user (\d+)")


def params_from_text(kind, message, context):
    context = context or {}
    if kind == "unitalk.credentials_invalid":
        found = _KEY.search(message or "")
        return {"key": found.group(0).rstrip(".,") if found else ""}
    if kind == "unitalk.unmapped_lines":
        return {"lines": [str(line) for line in context.get("lines") or []]}
    if kind == "bitrix.install_refused":
        found = _USER.search(message or "")
        return {"user": found.group(1) if found else ""}
    if kind.startswith("call."):
        phone = context.get("phone")
        if not phone:
            found = _PHONE.search(message or "")
            phone = found.group(0) if found else ""
        return {"phone": phone}
    return {}


def forwards(apps, schema_editor):
    Notification = apps.get_model("integration", "Notification")
    for row in Notification.objects.filter(params={}).iterator():
        params = params_from_text(row.kind, row.message, row.context)
        if row.kind == "jobs.dead":
            params = {"n": row.count}
        if params:
            Notification.objects.filter(pk=row.pk).update(params=params)


class Migration(migrations.Migration):
    dependencies = [("integration", "0002_jobattempt_abandoned")]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="params",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
