"""TicketBroker alone, with stand-in keepers: it only schedules. Each tracked
user's keeper is asked to refresh when the ticket is due, failures back off,
a user without a running server is dropped, and untrack stops at once."""

from __future__ import annotations

import asyncio
import time
import types
from typing import Any

import pytest

from pamkrb import lifecycle
from pamkrb.broker import TicketBroker
from pamkrb.exceptions import KerberosError


class Keepers:
    """Keepers that record each refresh; ``outcomes`` lists, per call, a
    ticket's seconds left or an exception to raise."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, str]] = []

    def __call__(self, name: str) -> Any:
        async def refresh(trigger: str) -> Any:
            self.calls.append((name, trigger))
            outcome = self.outcomes.pop(0) if self.outcomes else 3600
            if isinstance(outcome, BaseException):
                raise outcome
            info = types.SimpleNamespace(expires_at=time.time() + outcome, renew_until=None)
            return types.SimpleNamespace(info=info)

        return types.SimpleNamespace(refresh=refresh)


async def until(condition: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def fast_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "MIN_CHECK_DELAY", 0.01)
    monkeypatch.setattr(lifecycle, "MAX_BACKOFF", 0.05)


def test_it_refreshes_when_the_ticket_is_due_and_again_after_it_renews() -> None:
    # First a ticket inside the margin (due at once), then a fresh one.
    keepers = Keepers(30, 3600)

    async def scenario() -> None:
        broker = TicketBroker(keepers, margin=60, interval=0, errors=(KerberosError,))
        broker.track("alice")
        broker.track("alice")  # idempotent: one task per user
        await until(lambda: len(keepers.calls) >= 2)
        await asyncio.sleep(0.1)
        broker.untrack("alice")

    asyncio.run(scenario())
    assert keepers.calls == [("alice", "broker"), ("alice", "broker")]


def test_failures_back_off_and_are_forgotten_after_a_success() -> None:
    keepers = Keepers(KerberosError("KDC down"), KerberosError("KDC down"), 3600)
    failures: list[int] = []

    async def scenario() -> None:
        broker = TicketBroker(keepers, margin=60, interval=0, errors=(KerberosError,))
        broker.track("alice")
        await until(lambda: broker.failures.get("alice") == 2)
        failures.append(broker.failures["alice"])
        await until(lambda: len(keepers.calls) == 3)
        await until(lambda: "alice" not in broker.failures)
        broker.untrack("alice")

    asyncio.run(scenario())
    assert failures == [2]


def test_a_user_without_a_running_server_is_dropped_and_untrack_stops_at_once() -> None:
    keepers = Keepers()
    serving = {"alice": True}

    async def scenario() -> TicketBroker:
        broker = TicketBroker(
            keepers, margin=60, interval=0, errors=(KerberosError,), serving=lambda name: serving.get(name, False)
        )
        broker.track("bob")  # never had a server: dropped before any refresh
        broker.track("alice")
        await until(lambda: ("alice", "broker") in keepers.calls)
        broker.untrack("alice")
        await asyncio.sleep(0.05)
        return broker

    broker = asyncio.run(scenario())
    assert keepers.calls == [("alice", "broker")]
    assert not broker._tasks
