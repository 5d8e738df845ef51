"""The review's smaller findings (issue 18), one regression test each, in
process against real PAM, a real KDC and real file systems. The hub-level
ones live beside the attacks they belong to:

1. cache reads for delivery inside the per-user single flight: here;
2. forwarding headers the client sets: tests/test_ticket_owner.py;
3. the pending password, keyed by the authenticated name, wiped on time: here;
4. a password attempt never joins one without a password: here;
5. hard links made by another user: tests/test_native.py and here;
6. no brokering for a user without a running server: here and
   tests/test_ticket_owner.py;
7. a native panic does not end renewals or escape to the event loop: here;
8. the name PAM authenticated (PAM_USER) is who logs in: here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web

import sandbox
from conftest import assert_user_cache, require_root
from pamkrb import PAMKerberosAuthenticator, lifecycle, passwords, ticket_api
from pamkrb.broker import TicketBroker
from pamkrb.exceptions import KerberosError, NativePanic

FUSE_SERVER = Path(__file__).with_name("blocking_fuse.py")
PAM_MODULE_SOURCE = Path(__file__).parent / "data" / "pam_map_user" / "pam_map_user.c"
HOLD_SECONDS = 30


class FakePanic(BaseException):
    """Stands for pyo3's PanicException: a BaseException, not an Exception.
    (A real panic cannot be provoked from Python.)"""


# -- 1: a cache read that hangs holds only its user's attempt ------------------------


@pytest.fixture
def every_other_read_hangs(realm, user) -> Iterator[Path]:
    """``user``'s real cache on a FUSE mount that answers the reads of every
    first open and holds those of every second: inspecting it works, reading
    it again for delivery hangs. What a user's own FUSE mount over their
    cache can do."""
    require_root()
    work = Path(tempfile.mkdtemp(prefix="pamkrb-findings-fuse-"))
    mountpoint, control = work / "mnt", work / "control"
    mountpoint.mkdir()
    control.mkdir()
    realm.kinit(user.name, user.home / f"{user.name}.keytab", f"FILE:{work / 'content'}")
    args = [str(mountpoint), str(work / "content"), str(control), str(HOLD_SECONDS), str(user.uid), "every-other"]
    server = subprocess.Popen(
        [sys.executable, str(FUSE_SERVER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline().strip()
        assert line == "ready", f"cannot mount FUSE here: {line or server.stderr.read().strip()}"
        yield mountpoint / "krb5cc"
    finally:
        (control / "release").touch()
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
        server.kill()
        server.communicate(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def test_a_hanging_cache_read_holds_no_shared_thread(pam_service, realm, user, every_other_read_hangs):
    template = str(every_other_read_hangs)
    auth = PAMKerberosAuthenticator(
        service=pam_service, allow_all=True, ticket_broker=True, kdc_timeout=1, ccache_template=template
    )
    requester = types.SimpleNamespace(name=user.name, spawners={})

    async def scenario() -> tuple[list[Any], str]:
        # Far more deliveries than the default executor has threads.
        deliveries = [
            ticket_api.deliverable_ticket(auth, requester) for _ in range(4 * (min(32, (os.cpu_count() or 1) + 4)))
        ]
        outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        # The event loop's default executor (asyncio.to_thread) still runs.
        free = await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 5)
        return outcomes, free

    outcomes, free = asyncio.run(scenario())

    assert free == "free"
    assert all(isinstance(o, web.HTTPError) and o.status_code == 503 for o in outcomes), outcomes[:3]
    # One attempt thread for the user, stuck in the read; not one per request.
    stuck = [t for t in threading.enumerate() if t.name.startswith(f"pamkrb-kinit-{user.name}")]
    assert len(stuck) == 1, [t.name for t in stuck]


# -- 3: the pending password ----------------------------------------------------------------


def test_a_refused_logins_password_is_wiped_within_the_bound(pam_service, realm, user, monkeypatch):
    """The user passes PAM but is blocked: the ticket step never takes the
    password. It must not wait in hub memory for the next login."""
    monkeypatch.setattr(passwords, "PENDING_PASSWORD_SECONDS", 0.5)
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, credential_source="auto")
    auth.blocked_users = {user.name}
    stashed: list[bytearray] = []
    stash = auth.pending_passwords.stash

    def spy(handler, username, password):
        stashed.append(password)
        stash(handler, username, password)

    monkeypatch.setattr(auth.pending_passwords, "stash", spy)

    async def scenario() -> Any:
        result = await auth.get_authenticated_user(None, {"username": user.name, "password": user.password})
        await asyncio.wait_for(_until(lambda: not auth.pending_passwords), 5)
        return result

    assert asyncio.run(scenario()) is None
    assert len(stashed) == 1
    assert stashed[0] == bytearray(len(stashed[0])), "the password was not wiped"


async def _until(condition) -> None:
    """Poll state that threads and timers change; callers bound it with wait_for."""
    while not condition():  # noqa: ASYNC110 - nothing to wait on but the state itself
        await asyncio.sleep(0.05)


# -- 4: a password attempt never joins one without ---------------------------------------------


def test_an_exclusive_attempt_waits_for_the_running_one_and_runs_its_own():
    flight = lifecycle.SingleFlight("pamkrb-test")
    release = threading.Event()
    calls: list[str] = []

    def without_password(deadline):
        calls.append("renewal")
        release.wait(10)
        return "renewal's result"

    def with_password(deadline):
        calls.append("sign-in")
        return "sign-in's result"

    async def scenario():
        first = asyncio.ensure_future(flight.run("alice", without_password, 10))
        await _until(lambda: calls)
        second = asyncio.ensure_future(flight.run("alice", with_password, 10, exclusive=True))
        await asyncio.sleep(0.1)
        release.set()
        return await first, await second

    assert asyncio.run(scenario()) == ("renewal's result", "sign-in's result")
    assert calls == ["renewal", "sign-in"]


# -- 6 and 7: the broker ---------------------------------------------------------------------


def keeper_of(refresh):
    """TicketBroker's ``keeper`` argument: keepers whose refresh calls
    ``refresh(name)`` and whose ticket is what it returns."""

    def keeper(name):
        async def keep(trigger):
            return types.SimpleNamespace(info=await refresh(name))

        return types.SimpleNamespace(refresh=keep)

    return keeper


def test_the_broker_stops_for_a_user_without_a_running_server(monkeypatch):
    monkeypatch.setattr(lifecycle, "MIN_CHECK_DELAY", 0.01)
    refreshed: list[str] = []
    serving = {"alice": True}

    async def refresh(name):
        refreshed.append(name)
        serving["alice"] = False  # the server stops after this refresh
        # A ticket already inside the margin: the next look is due at once.
        return types.SimpleNamespace(expires_at=time.time() + 60, renew_until=None)

    async def scenario():
        broker = TicketBroker(
            keeper_of(refresh),
            margin=60,
            interval=0,
            errors=(KerberosError,),
            serving=lambda name: serving.get(name, False),
        )
        broker.track("alice")
        broker.track("bob")  # a stale token's user: never refreshed
        await _until(lambda: not broker._tasks)
        return broker

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert refreshed == ["alice"]


def test_a_native_panic_neither_ends_renewals_nor_escapes(monkeypatch):
    monkeypatch.setattr(lifecycle, "MAX_BACKOFF", 0.05)
    refreshes: list[int] = []
    flight = lifecycle.SingleFlight("pamkrb-test")

    def panics(deadline):
        raise FakePanic("explicit panic")

    async def refresh(name):
        refreshes.append(1)
        raise FakePanic("explicit panic")

    async def scenario():
        # Through the attempt runner: an ordinary error for every caller.
        with pytest.raises(NativePanic, match="explicit panic"):
            await flight.run("alice", panics, 5)
        # Straight into the broker's loop: logged, and tried again.
        broker = TicketBroker(keeper_of(refresh), margin=60, interval=0, errors=(KerberosError,))
        broker.track("alice")
        await _until(lambda: len(refreshes) >= 3)
        assert list(broker._tasks) == ["alice"]
        broker.untrack("alice")

    asyncio.run(asyncio.wait_for(scenario(), 20))
    with pytest.raises(NativePanic):
        lifecycle.call_native(panics, 0)


# -- 8: the name PAM authenticated ------------------------------------------------------------


@pytest.fixture
def mapping_pam_service() -> Iterator[str]:
    """A PAM service whose first module maps "alias-NAME" to NAME (PAM_USER),
    then pam_unix: the shape of winbind's and SSSD's name mapping."""
    require_root()
    work = Path(tempfile.mkdtemp(prefix="pamkrb-pam-map-"))
    os.chmod(work, 0o755)
    module = work / "pam_map_user.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wall", "-Werror", "-o", str(module), str(PAM_MODULE_SOURCE), "-lpam"], check=True
    )
    name = f"pamkrb-map-{os.getpid()}"
    service = Path("/etc/pam.d") / name
    service.write_text(f"auth requisite {module}\nauth required pam_unix.so nodelay\naccount required pam_unix.so\n")
    try:
        yield name
    finally:
        service.unlink()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("source", ["keytab", "password"])
def test_the_name_pam_authenticated_is_who_logs_in(mapping_pam_service, realm, user, source):
    """With the password source the login's password must be found under
    the authenticated name, not the typed one, or the login is refused."""
    if source == "password":
        realm.kadmin(f"cpw -pw {user.password} {realm.qualify(user.name)}")
    auth = PAMKerberosAuthenticator(service=mapping_pam_service, allow_all=True, credential_source=source)

    result = asyncio.run(
        auth.get_authenticated_user(None, {"username": f"alias-{user.name}", "password": user.password})
    )

    assert result is not None
    assert result["name"] == user.name
    assert_user_cache(realm, user)
    assert sandbox.UnixUser.existing(f"alias-{user.name}") is None


# -- blocked users ----------------------------------------------------------------------------


def test_a_blocked_users_ticket_is_destroyed_at_the_next_refresh(pam_service, realm, user):
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    assert asyncio.run(auth.get_authenticated_user(None, {"username": user.name, "password": user.password}))
    assert realm.klist_valid(user.default_ccache)
    running = types.SimpleNamespace(active=True, pending=None)
    hub_user = types.SimpleNamespace(name=user.name, spawners={"": running})

    auth.blocked_users = {user.name}
    refreshed = asyncio.run(auth.refresh_user(hub_user))

    assert refreshed is False  # JupyterHub logs the user out
    assert not os.path.lexists(user.default_ccache)
