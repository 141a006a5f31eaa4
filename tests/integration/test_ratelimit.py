import pytest

from integration.core import ratelimit
from integration.core.errors import RateLimitedError


@pytest.fixture(params=["file", "redis"])
def backend(request, settings, tmp_path):
    if request.param == "file":
        settings.REDIS_URL = ""
        settings.RATELIMIT_DIR = tmp_path
    else:
        settings.REDIS_URL = "redis://127.0.0.1:6379/15"
        ratelimit._redis.cache_clear()
        ratelimit._gcra_script.cache_clear()
        ratelimit._fill_script.cache_clear()
        ratelimit._redis().flushdb()
    yield request.param
    ratelimit._redis.cache_clear()
    ratelimit._gcra_script.cache_clear()
    ratelimit._fill_script.cache_clear()


def test_burst_passes_without_waiting_then_requests_are_spaced_by_the_drain_rate(backend):
    waits = [ratelimit.reserve("bucket", burst=50, per_second=2.0) for _ in range(53)]
    assert all(w == 0 for w in waits[:50])
    # the 51st must wait about one drain interval, the 53rd about three
    assert 0.4 < waits[50] <= 0.5
    assert 1.4 < waits[52] <= 1.5


def test_a_wait_longer_than_allowed_raises_without_reserving(backend):
    for _ in range(5):
        ratelimit.reserve("tight", burst=5, per_second=1.0)
    with pytest.raises(RateLimitedError) as err:
        ratelimit.reserve("tight", burst=5, per_second=1.0, max_wait=0.5)
    assert 0.5 < err.value.retry_after <= 1.0
    # not reserved: the next caller with patience gets the same slot
    assert ratelimit.reserve("tight", burst=5, per_second=1.0) <= 1.0


def test_buckets_are_independent(backend):
    for _ in range(3):
        ratelimit.reserve("a", burst=3, per_second=1.0)
    assert ratelimit.reserve("b", burst=3, per_second=1.0) == 0


def test_a_parked_key_reports_its_remaining_time(backend):
    assert ratelimit.parked_for("m") == 0
    ratelimit.park("m", 30)
    assert 29 < ratelimit.parked_for("m") <= 30
    assert ratelimit.parked_for("other") == 0


def test_a_bucket_the_provider_says_is_full_waits_for_its_drain_and_never_moves_back(backend):
    # given our count of 10 requests of a burst of 20 (2 per second)
    for _ in range(10):
        ratelimit.reserve("full", burst=20, per_second=2.0)
    # when the provider answers that its counter is at 20
    ratelimit.fill("full", per_second=2.0, level=20)
    # then the next request waits for the provider's counter to drain below the burst
    with pytest.raises(RateLimitedError) as err:
        ratelimit.reserve("full", burst=20, per_second=2.0, max_wait=0.1)
    assert 0.4 < err.value.retry_after <= 0.5
    # and a lower level told later moves nothing back
    ratelimit.fill("full", per_second=2.0, level=5)
    with pytest.raises(RateLimitedError):
        ratelimit.reserve("full", burst=20, per_second=2.0, max_wait=0.1)
