"""Another local user mounts a FUSE file system on the victim's cache path.

Where /dev/fuse is open to everyone (udev's default on most distributions)
and fusermount3 is setuid root, any user can create /tmp/krb5cc_<uid> of
another user's as a directory and mount, say, ``bindfs --no-allow-other`` on
it. The kernel then refuses that path to every other uid, root included:
``stat`` fails with EACCES, and ``rename`` or ``rmdir`` of a mount point with
EBUSY. Root cannot move the plant aside as it does with a planted file,
symlink or directory (tests/test_hostile_caches.py), nor unmount it without
taking on the attacker's mount as a cause of its own.

What the fixed product must do: the victim still gets in, with a ticket at
the fallback path /run/pamkrb/<uid>/krb5cc (a 0700 directory of the
victim's, under a directory only root can write), the server and its
kernels are pointed at it through KRB5CCNAME, and the hub log says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox

FALLBACK_ROOT = Path("/run/pamkrb")
FUSE_TOOLS = (Path("/usr/bin/bindfs"), Path("/usr/bin/fusermount3"))

KERNEL_CHECK = """
import json, os, subprocess
klist = subprocess.run(["klist"], capture_output=True, text=True)
print(json.dumps({"uid": os.getuid(), "ccname": os.environ.get("KRB5CCNAME"),
                  "klist": klist.returncode, "klist_out": klist.stdout + klist.stderr}))
"""


def fallback_cache(user: sandbox.UnixUser) -> Path:
    return FALLBACK_ROOT / str(user.uid) / "krb5cc"


def as_user(user: sandbox.UnixUser, args: list[str]) -> None:
    result = user.run(args)
    assert result.returncode == 0, f"{args} as {user.name}: {result.stderr}"


@pytest.fixture
def locked_cache_path(user: sandbox.UnixUser, attacker: sandbox.UnixUser) -> Iterator[Path]:
    """The victim's default cache path, a directory of the attacker's with
    the attacker's ``bindfs --no-allow-other`` mounted on it.

    /dev/fuse is 0666 only while the attacker mounts; the mount outlives
    that. Teardown unmounts it, removes the directory and the victim's
    fallback directory. Request it before ``hub_factory``, so that the hub
    and the victim's server are stopped first.
    """
    missing = [str(tool) for tool in FUSE_TOOLS if not tool.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run tools/setup.sh (it installs Debian's fuse3 and bindfs)")
    path = user.default_ccache
    source = attacker.home / "decoy"
    as_user(attacker, ["mkdir", str(source)])
    as_user(attacker, ["mkdir", str(path)])
    try:
        with contextlib.ExitStack() as mounted:
            with sandbox.fuse_device_mode(0o666):
                mounted.enter_context(sandbox.user_fuse_mount(attacker, source, path))
            with pytest.raises(PermissionError):
                os.stat(path)  # the lockout itself: root is refused
            yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(path)
        shutil.rmtree(fallback_cache(user).parent, ignore_errors=True)


def test_fuse_mount_on_the_cache_path_does_not_lock_the_victim_out(
    realm: sandbox.Realm,
    user: sandbox.UnixUser,
    attacker: sandbox.UnixUser,
    locked_cache_path: Path,
    hub_factory,
) -> None:
    hub = hub_factory()

    session = sandbox.login_and_spawn(hub, user)

    fallback = fallback_cache(user)
    top = os.lstat(FALLBACK_ROOT)
    assert stat.S_ISDIR(top.st_mode), f"{FALLBACK_ROOT}: {stat.filemode(top.st_mode)}"
    assert top.st_uid == 0, f"{FALLBACK_ROOT} is owned by uid {top.st_uid}"
    assert not top.st_mode & 0o022, f"{FALLBACK_ROOT} is mode {stat.S_IMODE(top.st_mode):04o}: others could plant there"
    directory = os.lstat(fallback.parent)
    assert stat.S_ISDIR(directory.st_mode), f"{fallback.parent}: {stat.filemode(directory.st_mode)}"
    assert directory.st_uid == user.uid, f"{fallback.parent} is owned by uid {directory.st_uid}"
    assert stat.S_IMODE(directory.st_mode) == 0o700, f"{fallback.parent}: {stat.S_IMODE(directory.st_mode):04o}"
    cache = os.lstat(fallback)
    assert stat.S_ISREG(cache.st_mode), f"{fallback}: {stat.filemode(cache.st_mode)}"
    assert (cache.st_uid, cache.st_gid) == (user.uid, user.gid), f"{fallback} is {cache.st_uid}:{cache.st_gid}"
    assert stat.S_IMODE(cache.st_mode) == 0o600, f"{fallback}: {stat.S_IMODE(cache.st_mode):04o}"
    assert cache.st_nlink == 1

    (server,) = sandbox.singleuser_pids(user.uid)
    assert sandbox.process_environ(server).get("KRB5CCNAME") == f"FILE:{fallback}"

    valid = user.run(["klist", "-s", "-c", f"FILE:{fallback}"], env=realm.client_env())
    assert valid.returncode == 0, f"klist -s as {user.name}: {valid.stderr}"
    shown = user.run(["klist", "-c", f"FILE:{fallback}"], env=realm.client_env())
    assert f"Default principal: {user.name}@{realm.name}" in shown.stdout, shown.stdout + shown.stderr

    seen = sandbox.run_in_server(session, f"{hub.url}/user/{user.name}", KERNEL_CHECK)
    assert seen["uid"] == user.uid
    assert seen["ccname"] == f"FILE:{fallback}"
    assert seen["klist"] == 0, seen["klist_out"]
    assert f"Default principal: {user.name}@{realm.name}" in seen["klist_out"]

    mentions = [line for line in hub.log_text().splitlines() if f"/run/pamkrb/{user.uid}" in line]
    assert mentions, f"the hub log never names the fallback /run/pamkrb/{user.uid}:\n{hub.log_tail()}"
    # The status the status bar shows names the path in use.
    status = session.get(f"{hub.url}/user/{user.name}/pamkrb/api/status", timeout=30).json()
    assert status["ccache"] == str(fallback), status
    assert status["state"] == "valid", status
    # Worked around, not through: the attacker's mount is still where it was.
    assert sandbox.is_mount_point(locked_cache_path)

    # And when the server stops, the ticket at the fallback goes with it.
    stop = session.delete(
        f"{hub.url}/hub/api/users/{user.name}/server",
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
        timeout=60,
    )
    assert stop.status_code in (202, 204), stop.text
    sandbox.wait_until(lambda: not os.path.lexists(fallback), timeout=30, message="the fallback cache to go")
    assert sandbox.is_mount_point(locked_cache_path)
