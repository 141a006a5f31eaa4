"""Re-encrypt every secret at rest with the newest FIELD_ENCRYPTION_KEY.

    python manage.py rotate_encryption

Rotation: put a new key first in FIELD_ENCRYPTION_KEY (keep the old ones after it), run this,
then drop the old keys. Works on the raw column values, row by row, each in its own short
transaction, so it is safe to run while the app works (a concurrent token refresh simply writes
a value already encrypted with the newest key).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from integration.core import crypto


class Command(BaseCommand):
    help = "Re-encrypt all encrypted fields with the newest FIELD_ENCRYPTION_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        quote = connection.ops.quote_name
        for model in apps.get_models():
            fields = [f for f in model._meta.fields if isinstance(f, crypto.EncryptedTextField)]
            if not fields:
                continue
            table = quote(model._meta.db_table)
            pk = quote(model._meta.pk.column)
            for field in fields:
                column = quote(field.column)
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT {pk}, {column} FROM {table}")  # noqa: S608 - names quoted
                    rows = cursor.fetchall()
                changed = 0
                for row_pk, stored in rows:
                    if not stored or not str(stored).startswith(crypto.PREFIX):
                        continue
                    rotated = crypto.rotate(str(stored))
                    with transaction.atomic(), connection.cursor() as cursor:
                        # Only if unchanged meanwhile: never overwrite a newer secret.
                        cursor.execute(
                            f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s",  # noqa: S608
                            [rotated, row_pk, stored],
                        )
                        changed += cursor.rowcount
                total += changed
                self.stdout.write(f"{model._meta.label}.{field.name}: {changed} re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"done: {total} values re-encrypted"))
