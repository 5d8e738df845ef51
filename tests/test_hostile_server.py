"""A user's single-user server, seen by others and by time.

- Anyone who can reach the proxy can send requests to a user's server without
  a cookie. Those must not drive the user's Kerberos renewals (attack 6):
  each would be an AS request to the KDC, and a failing one may count
  against a lockout policy.
- With ordinary settings (90 s tickets, refresh_margin 60, the default
  refresh interval) an idle user's ticket must never lapse (attack 7).
- Reading a cache that sits on a slow or hostile file system must not hold the
  GIL, or one stuck read freezes every thread of the hub (attack 9).

(Attack 10, a panic in the PAM conversation, cannot be provoked from Python.)
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import sandbox
from conftest import SHORT_LIFETIME, require_root
from pamkrb import _native

BURST = 60
# Margin above the 90 s lifetime: every trigger finds the ticket low and renews.
ALWAYS_RENEW = 120
QUIET_TIMER = 3600
POLL_SECONDS = 200
EXPIRY_GRACE = 3  # seconds: klist shows whole seconds, and polling is not instant


def settled_as_requests(realm: sandbox.Realm, quiet: float = 1.0, timeout: float = 20) -> int:
    """The KDC's AS_REQ count once it has not changed for ``quiet`` seconds."""
    last = {"count": -1, "since": time.monotonic()}

    def stable() -> int | None:
        count = realm.kdc_requests("AS_REQ")
        if count != last["count"]:
            last["count"], last["since"] = count, time.monotonic()
            return None
        return count if time.monotonic() - last["since"] >= quiet else None

    return sandbox.wait_until(stable, timeout=timeout, interval=0.1, message="the KDC to go quiet")


# -- attack 6: anonymous requests drive the KDC ---------------------------------------


def test_anonymous_requests_to_a_users_server_cause_no_kdc_requests(hub_factory, short_realm, short_user):
    hub = hub_factory(
        {
            "PAMKerberosAuthenticator.refresh_margin": ALWAYS_RENEW,
            "Spawner.environment": {"PAMKRB_REFRESH_INTERVAL": str(QUIET_TIMER)},
        },
        realm=short_realm,
    )
    sandbox.login_and_spawn(hub, short_user)
    anonymous = hub.session()
    url = f"{hub.url}/user/{short_user.name}/notebooks/x.ipynb"

    # The same window twice: once with nobody sending anything, once with the burst.
    before_quiet = settled_as_requests(short_realm)
    started = time.monotonic()
    for _ in range(BURST):
        response = anonymous.get(url, allow_redirects=False, timeout=10)
        assert response.status_code in (302, 401, 403), response.status_code
    window = time.monotonic() - started
    after_burst = settled_as_requests(short_realm)
    burst = after_burst - before_quiet

    time.sleep(window)  # a measurement window, not a wait for a condition
    quiet = settled_as_requests(short_realm) - after_burst

    assert burst <= quiet + 2, (
        f"{BURST} anonymous GETs caused {burst} AS_REQs in {window:.1f} s; the same window without requests had {quiet}"
    )


# -- attack 7: tickets lapse with ordinary settings -----------------------------------------


def test_idle_users_ticket_never_lapses_with_the_default_refresh_interval(hub_factory, short_realm, short_user):
    """Slow: about four minutes (pytest.ini has no `slow` marker to put on it).

    90-second tickets, refresh_margin 60 on the hub, PAMKRB_REFRESH_INTERVAL
    left at its default, and no request at all after the spawn: whatever
    schedules renewals must do so before the ticket runs out."""
    hub = hub_factory({"PAMKerberosAuthenticator.refresh_margin": 60}, realm=short_realm)
    sandbox.login_and_spawn(hub, short_user)
    cache = short_user.default_ccache
    grace = datetime.timedelta(seconds=EXPIRY_GRACE)
    renewed = 0
    last_expiry = None
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        now = datetime.datetime.now()
        ticket = short_realm.klist(cache)
        assert ticket.expires + grace > now, (
            f"the ticket of {short_user.name} expired at {ticket.expires:%H:%M:%S}; "
            f"now {now:%H:%M:%S}, {renewed} renewals seen"
        )
        if last_expiry is not None and ticket.expires > last_expiry:
            renewed += 1
        last_expiry = ticket.expires
        sandbox.wait_until(lambda at=now: datetime.datetime.now() - at >= datetime.timedelta(seconds=2), timeout=5)
    assert renewed >= POLL_SECONDS // SHORT_LIFETIME


# -- attack 9: the GIL during a blocked cache read -------------------------------------------

FUSE_SERVER = Path(__file__).with_name("blocking_fuse.py")
HOLD_SECONDS = 8  # the FUSE server answers the held read by itself after this long
WINDOW = 1.0


@pytest.fixture
def blocking_cache(realm, user):
    """A real cache of ``user`` at a path on a FUSE mount whose first read
    blocks. Yields (path, control directory); the read is released by
    creating ``control/release``."""
    require_root()
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse: cannot mount a file system whose reads block")
    work = Path(tempfile.mkdtemp(prefix="pamkrb-hostile-fuse-"))
    mountpoint, control = work / "mnt", work / "control"
    mountpoint.mkdir()
    control.mkdir()
    realm.kinit(user.name, user.home / f"{user.name}.keytab", f"FILE:{work / 'content'}")
    server = subprocess.Popen(
        [sys.executable, str(FUSE_SERVER), str(mountpoint), str(work / "content"), str(control), str(HOLD_SECONDS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline().strip()
        if line != "ready":
            pytest.skip(f"cannot mount FUSE here: {line or server.stderr.read().strip()}")
        yield mountpoint / "krb5cc", control
    finally:
        (control / "release").touch()
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
        server.kill()
        server.communicate(timeout=10)  # also closes the pipes
        shutil.rmtree(work, ignore_errors=True)


def test_blocked_cache_read_does_not_hold_the_gil(blocking_cache, realm, user):
    path, control = blocking_cache
    outcome: dict[str, object] = {}

    def read() -> None:
        try:
            outcome["info"] = _native.inspect_ticket(str(path))
        except Exception as e:  # reported below, whatever it is
            outcome["error"] = e

    reader = threading.Thread(target=read, daemon=True)
    marker = control / "read-started"
    # This thread runs a loop while the reader gets stuck in read(2), and for
    # WINDOW seconds after. If the GIL is held across the read, the loop
    # stands still until the FUSE server stops holding the read by itself.
    count, longest, blocked_at = 0, 0.0, None
    started = last = time.monotonic()
    reader.start()
    try:
        while True:
            now = time.monotonic()
            longest = max(longest, now - last)
            last = now
            if now - started >= HOLD_SECONDS:
                break
            if blocked_at is None:
                if marker.exists():
                    blocked_at = time.monotonic()
                elif not reader.is_alive():
                    break
            else:
                count += 1
                if now - blocked_at >= WINDOW:
                    break
        still_blocked = reader.is_alive()
    finally:
        (control / "release").touch()
        reader.join(timeout=HOLD_SECONDS + 10)

    assert marker.exists(), f"inspect_ticket never read the cache: {outcome}"
    assert longest < 0.2, f"another thread stood still for {longest:.1f} s while a cache read was blocked"
    assert still_blocked, "the read ended before the window did: no evidence either way"
    assert count >= 10_000, f"another thread ran only {count} times in {WINDOW:g} s"
    assert "error" not in outcome, outcome
    assert outcome["info"].principal == f"{user.name}@{realm.name}"
