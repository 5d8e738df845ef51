"""The ticket lifecycle's rules (pamkrb.lifecycle), without a KDC."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from types import SimpleNamespace

import pytest

from pamkrb import lifecycle
from pamkrb.exceptions import KerberosError
from pamkrb.lifecycle import SingleFlight, TicketSettings, TicketState

NOW = 1_800_000_000.0


def ticket(expires_in: float, principal: str = "alice@R") -> SimpleNamespace:
    """A stand-in TicketInfo; whose it is, the native core decides (test_native.py)."""
    return SimpleNamespace(
        principal=principal,
        starts_at=NOW - 10,
        expires_at=NOW + expires_in,
        renew_until=None,
        is_for=lambda name: name == principal,
    )


# -- freshness and state --------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "fresh"),
    [
        (None, False),
        (ticket(3601), True),
        (ticket(3600), False),  # at the margin: renew (one rule, `>` fresh)
        (ticket(10), False),
        (ticket(-5), False),
        (ticket(9999, principal="mallory@R"), False),
    ],
)
def test_is_fresh(info, fresh):
    assert lifecycle.is_fresh(info, "alice@R", 3600, NOW) is fresh


@pytest.mark.parametrize(
    ("info", "error", "state"),
    [
        (ticket(7200), None, TicketState.VALID),
        (ticket(7200), "boom", TicketState.VALID),  # a fresh ticket outranks an old error
        (ticket(60), None, TicketState.EXPIRING),
        (ticket(60), "KDC down", TicketState.ERROR),
        (ticket(-1), None, TicketState.EXPIRED),
        (None, None, TicketState.MISSING),
        (None, "KDC down", TicketState.ERROR),
        (ticket(7200, principal="mallory@R"), None, TicketState.MISSING),
    ],
)
def test_ticket_state(info, error, state):
    assert lifecycle.ticket_state(info, "alice@R", 3600, NOW, error) is state


def test_next_check_follows_the_ticket_not_only_the_interval():
    rng = random.Random(1)
    # 90-second tickets, margin 60, default interval 300: due in 30 s, not 300.
    delay = lifecycle.next_check_delay(ticket(90), 60, 300, NOW, rng)
    assert 5 <= delay <= 30
    # A long ticket: the interval bounds the wait.
    assert lifecycle.next_check_delay(ticket(36000), 3600, 300, NOW, rng) == 300
    # Already inside the margin (renewal failed): retry soon, not in a loop.
    assert lifecycle.next_check_delay(ticket(10), 3600, 300, NOW, rng) == lifecycle.MIN_CHECK_DELAY
    # No ticket at all: soon, bounded by the interval.
    assert lifecycle.MIN_CHECK_DELAY <= lifecycle.next_check_delay(None, 3600, 300, NOW, rng) <= 60
    # Interval 0 means "the ticket alone decides".
    assert lifecycle.next_check_delay(ticket(7200), 3600, 0, NOW, rng) <= 3600


def test_next_check_never_lets_an_idle_ticket_lapse():
    rng = random.Random(7)
    for lifetime in (60, 90, 600, 3600, 36000):
        for margin in (0, 30, 60, 3600):
            for interval in (0, 60, 300, 100000):
                delay = lifecycle.next_check_delay(ticket(lifetime), margin, interval, NOW, rng)
                # The look comes before expiry (or as soon as allowed).
                assert delay <= max(lifetime - margin, lifecycle.MIN_CHECK_DELAY), (lifetime, margin, interval)


# -- the environment contract -------------------------------------------------------


def test_settings_round_trip_through_the_environment():
    settings = TicketSettings("a@R", "/k", "/tmp/c", refresh_margin=60, refresh_interval=30, kdc_timeout=2.5)
    env = settings.to_env()
    assert env["KRB5CCNAME"] == "FILE:/tmp/c"
    assert "PAMKRB_TICKET_LIFETIME" not in env
    again, missing = TicketSettings.from_env(env)
    assert missing == []
    assert again == settings
    with_lifetime = TicketSettings("a@R", "/k", "/tmp/c", ticket_lifetime=900)
    assert TicketSettings.from_env(with_lifetime.to_env())[0] == with_lifetime
    assert "PAMKRB_SIGN_IN" not in env
    by_reload = TicketSettings("a@R", "/k", "/tmp/c", sign_in_by_reload=True)
    assert by_reload.to_env()["PAMKRB_SIGN_IN"] == "reload"
    assert TicketSettings.from_env(by_reload.to_env())[0] == by_reload
    # One of the per-user variables a kernelspec may not pin (pamkrb kernelspec).
    assert set(by_reload.to_env()) <= lifecycle.ENV_NAMES


def test_defaults_apply_and_overrides_win():
    settings, _ = TicketSettings.from_env(
        {"PAMKRB_PRINCIPAL": "a@R", "PAMKRB_KEYTAB": "/k", "KRB5CCNAME": "FILE:/tmp/x"},
        refresh_margin=None,
        kdc_timeout=3.0,
    )
    assert settings.ccache == "/tmp/x"
    assert settings.refresh_margin == lifecycle.DEFAULT_REFRESH_MARGIN
    assert settings.refresh_interval == lifecycle.DEFAULT_REFRESH_INTERVAL
    assert settings.kdc_timeout == 3.0


def test_malformed_numbers_fall_back_and_missing_names_are_listed():
    env = {"PAMKRB_PRINCIPAL": "a@R", "PAMKRB_KEYTAB": "/k", "PAMKRB_CCACHE": "/c", "PAMKRB_REFRESH_MARGIN": "x"}
    assert TicketSettings.from_env(env)[0].refresh_margin == lifecycle.DEFAULT_REFRESH_MARGIN
    assert TicketSettings.from_env({"KRB5CCNAME": "KEYRING:x"}) == (None, ["principal", "keytab", "ccache"])


def test_settings_problems_name_the_values():
    settings = TicketSettings("a@R", "/k", "/c", refresh_margin=60, refresh_interval=300)
    problems = settings.problems(lifetime=60)
    assert any("refresh_margin (60 s) is not below the ticket lifetime (60 s)" in p for p in problems)
    assert any("refresh_interval (300 s) exceeds refresh_margin (60 s)" in p for p in problems)
    assert TicketSettings("a@R", "/k", "/c").problems(lifetime=36000) == []


# -- single flight -------------------------------------------------------------------


def test_concurrent_callers_share_one_attempt():
    calls = []
    release = threading.Event()

    def attempt(deadline):
        calls.append(deadline)
        release.wait(5)
        return "ticket"

    async def main():
        flight = SingleFlight()
        tasks = [asyncio.ensure_future(flight.run("alice", attempt, 5)) for _ in range(5)]
        await _until(lambda: calls)
        release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == ["ticket"] * 5
    assert len(calls) == 1


def test_a_caller_after_a_timeout_shares_the_running_attempt():
    calls = []
    release = threading.Event()

    def attempt(deadline):
        calls.append(deadline)
        release.wait(5)
        return "late"

    async def main():
        flight = SingleFlight()
        started = time.monotonic()
        with pytest.raises(KerberosError, match=r"within 0\.2 s"):
            await flight.run("alice", attempt, 0.2)
        # The first attempt is still running: the next caller joins it.
        second = asyncio.ensure_future(flight.run("alice", attempt, 5))
        await asyncio.sleep(0)
        assert flight.running("alice")
        release.set()
        assert await second == "late"
        return started

    started = asyncio.run(main())
    assert len(calls) == 1
    # The attempt got its first caller's deadline (to install nothing after it).
    assert calls[0] == pytest.approx(started + 0.2, abs=0.1)


def test_one_users_hung_attempt_does_not_delay_another_user():
    release = threading.Event()

    def hung(deadline):
        release.wait(10)
        return "alice"

    async def main():
        flight = SingleFlight()
        stuck = [asyncio.ensure_future(flight.run("alice", hung, 10)) for _ in range(20)]
        bob = await flight.run("bob", lambda deadline: "bob", 2)
        release.set()
        await asyncio.gather(*stuck)
        return bob

    assert asyncio.run(main()) == "bob"


def test_errors_reach_every_waiting_caller_and_the_next_call_starts_afresh():
    calls = []

    def failing(deadline):
        calls.append(1)
        raise KerberosError("KDC says no")

    async def main():
        flight = SingleFlight()
        for _ in range(2):
            with pytest.raises(KerberosError, match="KDC says no"):
                await flight.run("alice", failing, 2)
        assert not flight.running("alice")

    asyncio.run(main())
    assert len(calls) == 2


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# -- the ticket broker's rules ----------------------------------------------------------


def test_broker_settings_never_hand_the_server_the_keytab():
    settings = TicketSettings("a@R", "/etc/security/keytabs/a.keytab", "/tmp/c", broker=True)
    env = settings.to_env()
    assert env["PAMKRB_TICKET_BROKER"] == "1"
    assert "PAMKRB_KEYTAB" not in env
    again, missing = TicketSettings.from_env(env)
    assert missing == []
    assert again.broker
    assert again.keytab == ""
    assert again.renewed_by == "hub"
    assert TicketSettings("a@R", "/k", "/c").renewed_by == "server"


def test_failure_backoff_grows_to_a_bound():
    rng = random.Random(3)
    waits = [lifecycle.failure_backoff(n, rng) for n in range(1, 12)]
    assert lifecycle.failure_backoff(0) == 0
    assert waits[0] <= lifecycle.MIN_CHECK_DELAY * 1.2
    assert all(w <= lifecycle.MAX_BACKOFF for w in waits)
    assert waits[-1] >= lifecycle.MAX_BACKOFF * 0.8
    assert waits[4] > waits[0] * 4
