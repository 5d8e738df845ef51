"""Many logins at once, and renewals racing on one cache.

- 200 logins over 20 users through one in-process authenticator with its
  default executors, run concurrently: every cache valid, owned by its user,
  0600, no temporary file left.
- The hub (as root, for the user) and the user's own server (as the user)
  renew the same cache as fast as they can while a reader polls it: the
  reader never sees a missing, partial or wrongly owned cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

import sandbox
from pamkrb import PAMKerberosAuthenticator, _native
from pamkrb.exceptions import PamkrbError

USERS = 20
LOGINS_PER_USER = 10
BATCH = 50
RACE_SECONDS = 3.0
ALWAYS_RENEW = 11 * 3600  # above the realm's 10-hour ticket life: every check renews
# FCC version 4, the only cache format pamkrb writes.
CACHE_MAGIC = b"\x05\x04"


@pytest.fixture(scope="module")
def load_users(realm: sandbox.Realm) -> Iterator[list[sandbox.UnixUser]]:
    with sandbox.provisioned_users(realm, USERS, "pkl") as users:
        yield users


def test_200_concurrent_logins_leave_valid_owned_caches(pam_service, realm, load_users, record_property):
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    attempts = [user for user in load_users for _ in range(LOGINS_PER_USER)]

    async def run_all() -> list[object]:
        results: list[object] = []
        for start in range(0, len(attempts), BATCH):
            batch = attempts[start : start + BATCH]
            results += await asyncio.gather(
                *(auth.get_authenticated_user(None, {"username": u.name, "password": u.password}) for u in batch)
            )
        return results

    started = time.perf_counter()
    results = asyncio.run(run_all())
    seconds = time.perf_counter() - started
    report = f"{len(attempts)} logins over {USERS} users in {seconds:.2f} s ({len(attempts) / seconds:.0f} logins/s)"
    print(report)
    record_property("load", report)

    assert [r["name"] if isinstance(r, dict) else r for r in results] == [u.name for u in attempts]
    for user in load_users:
        st = os.lstat(user.default_ccache)
        assert stat.S_ISREG(st.st_mode)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.uid, user.gid, 0o600)
        assert st.st_nlink == 1
        assert _native.inspect_ticket(str(user.default_ccache), uid=user.uid).principal == f"{user.name}@{realm.name}"
        assert realm.klist_valid(user.default_ccache)
    left = sandbox.pamkrb_temp_files(uids={u.uid for u in load_users})
    assert left == [], f"temporary files left behind: {left}"


USER_RENEWAL_LOOP = textwrap.dedent(
    """
    import json, sys, time
    from pamkrb import _native
    from pamkrb.exceptions import PamkrbError
    principal, keytab, cache, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    deadline, count, errors = time.monotonic() + seconds, 0, []
    while time.monotonic() < deadline:
        try:
            _native.obtain_ticket(principal, keytab, cache)
            count += 1
        except PamkrbError as e:
            errors.append(str(e))
    print(json.dumps({"renewals": count, "errors": errors}))
    """
)


class CacheReader(threading.Thread):
    """Reads a cache path in a loop, as a user's kernel or klist would, and
    records every observation that is not a complete cache of ``uid``."""

    def __init__(self, path: str, uid: int, gid: int, principal: str):
        super().__init__(name="cache-reader", daemon=True)
        self.path, self.uid, self.gid, self.principal = path, uid, gid, principal
        self.reads = 0
        self.problems: list[str] = []
        # inspect_ticket's own refusals, kept apart: see the xfail below.
        self.inspect_errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.reads += 1
            try:
                st = os.lstat(self.path)
                if not stat.S_ISREG(st.st_mode):
                    self.problems.append(f"not a regular file: {st.st_mode:o}")
                if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (self.uid, self.gid, 0o600):
                    self.problems.append(f"owner {st.st_uid}:{st.st_gid} mode {stat.S_IMODE(st.st_mode):o}")
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    data = os.read(fd, 1 << 20)
                finally:
                    os.close(fd)
                if not data.startswith(CACHE_MAGIC) or len(data) < 100:
                    self.problems.append(f"partial cache: {len(data)} bytes")
            except Exception as e:  # every failure is a finding, whatever its type
                self.problems.append(f"{type(e).__name__}: {e}")
                continue
            try:
                if _native.inspect_ticket(self.path, uid=self.uid).principal != self.principal:
                    self.problems.append("wrong principal")
            except PamkrbError as e:
                self.inspect_errors.append(str(e))
            except Exception as e:  # every failure is a finding, whatever its type
                self.problems.append(f"{type(e).__name__}: {e}")


@dataclasses.dataclass
class Race:
    hub_renewals: int
    server_renewals: int
    hub_errors: list[str]
    server_errors: list[str]
    reader: CacheReader
    cache: str


@pytest.fixture(scope="module")
def race(realm: sandbox.Realm, pam_service: str) -> Iterator[Race]:
    """One race, several verdicts: the hub (root, in this process) and the
    user's server (a process running as the user) renew the same cache for
    RACE_SECONDS while a reader polls it."""
    with sandbox.provisioned_user(realm, "pkr") as user:
        principal = f"{user.name}@{realm.name}"
        keytab = str(user.home / f"{user.name}.keytab")
        cache = str(user.default_ccache)
        auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, refresh_margin=ALWAYS_RENEW)
        assert asyncio.run(auth.get_authenticated_user(None, {"username": user.name, "password": user.password}))

        reader = CacheReader(cache, user.uid, user.gid, principal)
        reader.start()
        server = subprocess.Popen(
            [sys.executable, "-c", USER_RENEWAL_LOOP, principal, keytab, cache, str(RACE_SECONDS)],
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            cwd=user.home,
            env=realm.client_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        hub_errors: list[str] = []

        async def hub_renewals() -> int:
            count, deadline = 0, time.monotonic() + RACE_SECONDS
            while time.monotonic() < deadline:
                try:
                    await auth.tickets.ensure_fresh(user.name)
                    count += 1
                except PamkrbError as e:
                    hub_errors.append(str(e))
            return count

        try:
            hub_count = asyncio.run(hub_renewals())
            out, err = server.communicate(timeout=RACE_SECONDS + 30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            reader.stop.set()
            reader.join()
        assert server.returncode == 0, err
        outcome = json.loads(out)
        result = Race(hub_count, outcome["renewals"], hub_errors, outcome["errors"], reader, cache)
        print(
            f"\nrace: {result.hub_renewals} hub-side and {result.server_renewals} server-side renewals "
            f"in {RACE_SECONDS:g} s ({len(hub_errors)} and {len(result.server_errors)} refused); "
            f"{reader.reads} reads, {len(reader.problems)} bad, {len(reader.inspect_errors)} inspect_ticket errors"
        )
        assert realm.klist_valid(cache)
        left = sandbox.pamkrb_temp_files(uids={user.uid})
        assert left == [], f"temporary files left behind: {left}"
        yield result


def test_racing_renewals_never_show_a_reader_a_missing_partial_or_foreign_cache(race: Race) -> None:
    assert race.hub_renewals > 10
    assert race.server_renewals > 10
    assert race.reader.reads > 100
    assert race.reader.problems == [], race.reader.problems[:10]


# Regression: a cache replaced by rename() has 0 links for a moment; that
# was once refused as a hard link (src/cache_file.rs not_a_single_regular_file).
def test_racing_renewals_and_reads_never_fail_on_a_good_cache(race: Race) -> None:
    # The reader's inspect_ticket hits the bug tens of times in 3 s; a
    # renewal refusing another (same cause, smaller window) about once in
    # five runs, so both are checked here rather than in a flaky test of its own.
    errors = race.reader.inspect_errors + race.hub_errors + race.server_errors
    assert errors == [], sorted(set(errors))[:3]
