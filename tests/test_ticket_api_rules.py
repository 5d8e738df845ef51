"""The ticket API's own rules, without a hub: rate limit and loopback test."""

from __future__ import annotations

import pytest

from pamkrb.ticket_api import RateLimit, is_loopback


def test_rate_limit_allows_a_burst_then_refills():
    limit = RateLimit(per_minute=3)
    assert [limit.take("alice", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limit.take("alice", now=100.0)
    assert wait == pytest.approx(20.0)
    # Another user has a bucket of their own.
    assert limit.take("bob", now=100.0) == 0.0
    # 20 s later one more request is allowed.
    assert limit.take("alice", now=120.0) == 0.0


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("10.0.0.5", False), ("", False), ("nonsense", False)],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback
