"""`manage.py rotate_encryption` re-encrypts stored secrets with the newest key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from bitrixapp.models import Portal
from integration.core import crypto

# Fixtures of the Bitrix24-side tests, scoped to this module (not to tests/bitrixapp as a whole).
from tests.integration.bitrix.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    _bitrix_settings,
    portal,
    rsps,
    sent,
)

pytestmark = pytest.mark.django_db(transaction=True)


def raw_tokens(portal: Portal) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM bitrixapp_portal WHERE id = %s", [portal.pk]
        )
        return cursor.fetchone()


def test_rotation_makes_secrets_readable_with_the_new_key_alone(portal, settings):
    # given: a new key put first, the old one kept after it
    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *old_keys]
    before = raw_tokens(portal)
    # when
    call_command("rotate_encryption")
    # then: values changed, and the old key can be dropped
    after = raw_tokens(portal)
    assert after != before
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert [crypto.decrypt(value) for value in after] == ["access-1", "refresh-1"]
    assert Portal.objects.get(pk=portal.pk).refresh_token == "refresh-1"
