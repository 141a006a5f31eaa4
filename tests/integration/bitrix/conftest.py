from tests.integration.bitrix.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    _bitrix_settings,
    portal,
    rsps,
    sent,
)
