from tests.support.fixtures import rsps, sent  # noqa: F401  (pytest fixtures, by name)
