import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from integration.core import crypto


def test_round_trip_and_ciphertext_hides_the_value():
    stored = crypto.encrypt("token-1234")
    assert stored.startswith("fernet:")
    assert "token-1234" not in stored
    assert crypto.decrypt(stored) == "token-1234"


def test_rotation_keeps_old_values_readable_and_rewrites_with_the_new_key(settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    stored = crypto.encrypt("secret")
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert crypto.decrypt(stored) == "secret"
    rotated = crypto.rotate(stored)
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert crypto.decrypt(rotated) == "secret"
    with pytest.raises(ImproperlyConfigured):
        crypto.decrypt(stored)
