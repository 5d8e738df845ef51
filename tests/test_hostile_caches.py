"""Another local user attacks a victim's credential cache in /tmp.

Every notebook user has a shell on the hub host, and /tmp is shared, so the
attacker here is a process running with another user's uid, and the victim
logs in through the real login form of a real hub against a real KDC. The
assertions are what the victim or an admin can see: HTTP answers, the file at
the cache path (owner, mode, links), ``klist`` run as the victim, and the
environment of the victim's single-user server.

What the fixed product must do:
- a cache someone else planted at the victim's path is never handed to the
  victim's server, however well-formed (attack 2);
- a symlink, hard link or directory planted before login neither locks the
  victim out nor gets written through: the login succeeds, the victim gets a
  fresh cache of their own, the attacker's files stay as they were (attack 3);
- a hard link the attacker makes to the victim's cache after login does not
  stop the victim's next renewal (attack 3d).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox
from conftest import form_login, logged_in

ATTACKER_TEXT = b"the attacker's own file: must never change\n"
HARDLINKS_SYSCTL = Path("/proc/sys/fs/protected_hardlinks")


@pytest.fixture
def unprotected_hardlinks() -> Iterator[None]:
    """fs.protected_hardlinks=0 for the test, so users may link others' files."""
    saved = HARDLINKS_SYSCTL.read_text()
    HARDLINKS_SYSCTL.write_text("0\n")
    try:
        yield
    finally:
        HARDLINKS_SYSCTL.write_text(saved)


def as_user(user: sandbox.UnixUser, args: list[str], data: bytes | None = None) -> None:
    """Run ``args`` as ``user`` (no shell of root's, no su); fail the test if it fails."""
    result = subprocess.run(
        args, user=user.uid, group=user.gid, extra_groups=[], cwd=user.home, input=data, capture_output=True
    )
    assert result.returncode == 0, f"{args} as {user.name}: {result.stderr.decode(errors='replace')}"


def attacker_file(attacker: sandbox.UnixUser, name: str = "bait") -> Path:
    """A 0644 file of the attacker's in the attacker's home (same file system as /tmp)."""
    path = attacker.home / name
    as_user(attacker, ["sh", "-c", 'umask 022; cat > "$1"', "sh", str(path)], ATTACKER_TEXT)
    return path


def klist_as(user: sandbox.UnixUser, realm: sandbox.Realm, path: str | os.PathLike[str]) -> str:
    """``klist -c FILE:path`` run as ``user``: what the user's tools would see."""
    result = user.run(["klist", "-c", f"FILE:{path}"], env=realm.client_env())
    assert result.returncode == 0, f"klist as {user.name}: {result.stderr}"
    return result.stdout


def assert_own_single_cache(user: sandbox.UnixUser, path: str | os.PathLike[str]) -> os.stat_result:
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file: {stat.filemode(st.st_mode)}"
    assert (st.st_uid, st.st_gid) == (user.uid, user.gid), f"{path} is owned by {st.st_uid}:{st.st_gid}"
    assert stat.S_IMODE(st.st_mode) == 0o600, f"{path} has mode {stat.S_IMODE(st.st_mode):o}"
    assert st.st_nlink == 1, f"{path} has {st.st_nlink} links"
    return st


def log_in(hub: sandbox.Hub, user: sandbox.UnixUser):
    response = form_login(hub, user.name, user.password)
    assert logged_in(response), f"login of {user.name} refused: HTTP {response.status_code}; hub log: {hub_errors(hub)}"
    return response.session


def hub_errors(hub: sandbox.Hub) -> str:
    """The hub log's error lines, for failure messages."""
    return "\n".join(line for line in hub.log_text().splitlines() if line.startswith("[E "))


def find_by_inode(inode: tuple[int, int], top: str = "/tmp", depth: int = 3) -> Path | None:
    """A directory entry under ``top`` (``depth`` levels) that is the inode ``(dev, ino)``."""
    frontier = [Path(top)]
    for _ in range(depth):
        deeper = []
        for directory in frontier:
            with contextlib.suppress(OSError), os.scandir(directory) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) == inode:
                        return Path(entry.path)
                    if entry.is_dir(follow_symlinks=False):
                        deeper.append(Path(entry.path))
        frontier = deeper
    return None


# -- attack 2: a forged cache at the victim's path --------------------------------------


def test_cache_forged_by_another_user_is_not_given_to_the_victims_server(hub_factory, realm, user, attacker):
    """After a /tmp clean-up the attacker plants a real, long-lived ticket of
    the victim's principal, owned by the attacker. Whoever owns that file can
    later swap its contents (say, for a ticket of the attacker's own, so the
    victim's jobs act as the attacker), so the victim's server must not use it."""
    hub = hub_factory()
    session = log_in(hub, user)
    cache = user.default_ccache
    assert_own_single_cache(user, cache)

    cache.unlink()  # what tmpreaper or systemd-tmpfiles does to an old file
    staging = Path(tempfile.mkdtemp(prefix="pamkrb-hostile-"))
    try:
        realm.kinit(user.name, user.home / f"{user.name}.keytab", f"FILE:{staging / 'cc'}")
        forged = (staging / "cc").read_bytes()
    finally:
        shutil.rmtree(staging)
    as_user(attacker, ["sh", "-c", 'umask 077; cat > "$1"', "sh", str(cache)], forged)
    planted = os.lstat(cache)
    assert (planted.st_uid, stat.S_IMODE(planted.st_mode)) == (attacker.uid, 0o600)
    assert realm.klist(cache).principal == f"{user.name}@{realm.name}"

    session.get(f"{hub.url}/hub/spawn/{user.name}", timeout=60)
    hub.wait_for_server(session, user.name)

    pids = sandbox.singleuser_pids(user.uid)
    assert len(pids) == 1, pids
    ccname = sandbox.process_environ(pids[0])["KRB5CCNAME"]
    path = ccname.removeprefix("FILE:")
    st = assert_own_single_cache(user, path)
    assert (st.st_dev, st.st_ino) != (planted.st_dev, planted.st_ino)
    assert f"Default principal: {user.name}@{realm.name}" in klist_as(user, realm, path)
    with contextlib.suppress(FileNotFoundError):
        now = os.lstat(cache)
        assert (now.st_dev, now.st_ino) != (planted.st_dev, planted.st_ino), "the forged cache is still in place"
        assert now.st_uid == user.uid


# -- attack 3: plants that would lock the victim out -------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "directory"])
def test_planted_entry_at_cache_path_neither_locks_the_victim_out_nor_is_written_through(
    hub_factory, realm, user, attacker, kind
):
    cache = user.default_ccache
    bait = attacker_file(attacker)
    inside: Path | None = None
    if kind == "symlink":
        as_user(attacker, ["ln", "-s", str(bait), str(cache)])
    elif kind == "hardlink":
        # The attacker links a file of their own: fs.protected_hardlinks allows that.
        as_user(attacker, ["ln", str(bait), str(cache)])
    else:
        as_user(attacker, ["mkdir", str(cache)])
        inside = cache / "inside"
        as_user(attacker, ["sh", "-c", 'cat > "$1"', "sh", str(inside)], ATTACKER_TEXT)
    planted = os.lstat(cache)
    bait_before = sandbox.FileState.of(bait)
    inside_before = sandbox.FileState.of(inside) if inside else None
    hub = hub_factory()
    moved: Path | None = None
    try:
        log_in(hub, user)

        assert_own_single_cache(user, cache)
        assert realm.klist_valid(cache)
        assert f"Default principal: {user.name}@{realm.name}" in klist_as(user, realm, cache)
        bait_now = sandbox.FileState.of(bait)
        assert (bait_now.content, bait_now.mtime_ns, bait_now.uid) == (
            bait_before.content,
            bait_before.mtime_ns,
            bait_before.uid,
        )
        if kind == "directory":
            moved = find_by_inode((planted.st_dev, planted.st_ino))
            assert moved is not None, "the attacker's directory is gone instead of moved aside"
            assert sandbox.FileState.of(moved / "inside").content == inside_before.content
            assert sandbox.FileState.of(moved / "inside").mtime_ns == inside_before.mtime_ns
    finally:
        if os.path.isdir(cache) and not os.path.islink(cache):
            shutil.rmtree(cache)
        if moved is not None and moved.is_dir() and not moved.is_symlink():
            shutil.rmtree(moved)


def test_hard_link_to_the_victims_cache_does_not_stop_the_next_renewal(
    hub_factory, realm, user, attacker, unprotected_hardlinks
):
    """The attacker hard-links the victim's cache into their own directory
    (possible with fs.protected_hardlinks=0): the cache now has two links. The
    victim's next login must still renew it, and the attacker's link keeps
    only the old ticket."""
    hub = hub_factory()
    log_in(hub, user)
    cache = user.default_ccache
    first = assert_own_single_cache(user, cache)
    first_ticket = realm.klist(cache)
    stolen = attacker.home / "stolen"
    as_user(attacker, ["ln", str(cache), str(stolen)])
    assert os.lstat(cache).st_nlink == 2
    # klist shows whole seconds: let one pass, so a new ticket shows a later expiry.
    issued = time.time()
    sandbox.wait_until(lambda: time.time() >= issued + 1.1, timeout=5, message="the next second")

    log_in(hub, user)

    now = assert_own_single_cache(user, cache)
    assert (now.st_dev, now.st_ino) != (first.st_dev, first.st_ino)
    assert realm.klist(cache).expires > first_ticket.expires
    assert f"Default principal: {user.name}@{realm.name}" in klist_as(user, realm, cache)
    assert os.lstat(stolen).st_ino == first.st_ino
