from tests.integration.bitrix.fixtures import *  # noqa: F403
