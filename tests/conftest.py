import pytest


@pytest.fixture(autouse=True)
def _allow_test_client_host(settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
