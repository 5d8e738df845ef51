"""The "server on another host" harness: NamespacedSpawner (tools/sandbox/namespace.py).

A real hub spawns the user's server in a private mount namespace; code run in
a kernel of that server reports what the server sees. These tests check the
harness itself, not Kerberos renewal: the server must not see the cache the
hub wrote in /tmp nor the user's keytab, must still answer through the proxy,
and must not leave anything in the hub's /tmp. A namespace that cannot be set
up must stop the spawn, never let the server run un-namespaced.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Any

import sandbox
from conftest import assert_user_cache

# Runs inside the user's kernel; prints one JSON line.
PROBE = """
import json, os
report = {{"uid": os.getuid(), "mnt_ns": os.readlink("/proc/self/ns/mnt")}}
report["ccache_seen"] = os.path.lexists({ccache!r})
try:
    with open({keytab!r}, "rb") as f:
        f.read(1)
    report["keytab_errno"] = None
except OSError as e:
    report["keytab_errno"] = e.errno
report["keytab_dir"] = os.listdir({keytab_dir!r})
with open("/proc/self/mountinfo") as f:
    report["mountinfo"] = f.read()
with open({marker!r}, "w") as f:
    f.write("written inside the namespace")
report["tmp"] = sorted(os.listdir("/tmp"))
print(json.dumps(report))
"""


def mounts(mountinfo: str) -> dict[str, tuple[str, str]]:
    """Mount point -> (file system type, source), the last mount winning."""
    found = {}
    for line in mountinfo.splitlines():
        # "<id> <parent> <dev> <root> <mount point> <options> [optional...] - <type> <source> <super options>"
        before, _, after = line.partition(" - ")
        fstype, source = after.split()[:2]
        found[before.split()[4]] = (fstype, source)
    return found


def test_server_sees_neither_the_hubs_tmp_nor_the_keytabs(
    namespaced_hub_factory: Any,
    namespaced_realm: sandbox.Realm,
    namespaced_user: sandbox.UnixUser,
    keytab_dir: Path,
) -> None:
    user = namespaced_user
    keytab = keytab_dir / f"{user.name}.keytab"
    marker = Path(f"/tmp/pamkrb-ns-marker-{secrets.token_hex(8)}")
    hub = namespaced_hub_factory()

    session = sandbox.login_and_spawn(hub, user)

    # On the host: the hub wrote the user's cache, and the user can read their keytab.
    assert_user_cache(namespaced_realm, user)
    readable = user.run([str(sandbox.VENV_BIN / "python"), "-c", f"open({str(keytab)!r}, 'rb').read(1)"])
    assert readable.returncode == 0, readable.stderr

    probe = PROBE.format(
        ccache=str(user.default_ccache), keytab=str(keytab), keytab_dir=str(keytab_dir), marker=str(marker)
    )
    seen = sandbox.run_in_server(session, f"{hub.url}/user/{user.name}", probe)

    assert seen["uid"] == user.uid
    assert not seen["ccache_seen"]
    assert user.default_ccache.name not in seen["tmp"]
    assert seen["keytab_errno"] == errno.ENOENT
    assert seen["keytab_dir"] == []
    mounted = mounts(seen["mountinfo"])
    assert mounted["/tmp"] == ("tmpfs", "pamkrb-ns-tmp")
    assert mounted[str(keytab_dir)] == ("tmpfs", "pamkrb-ns-hidden")

    # The server process itself, not only its kernel, is in the new namespace.
    host_ns = os.readlink("/proc/self/ns/mnt")
    assert seen["mnt_ns"] != host_ns
    (server_pid,) = sandbox.singleuser_pids(user.uid)
    assert os.readlink(f"/proc/{server_pid}/ns/mnt") == seen["mnt_ns"]

    # Still reachable through the proxy after all that.
    status = session.get(f"{hub.url}/user/{user.name}/api/status", timeout=10)
    assert status.status_code == 200

    # Nothing the server wrote in its /tmp reaches the hub's.
    assert marker.name in seen["tmp"]
    leaked = [name for name in seen["tmp"] if os.path.lexists(Path("/tmp") / name)]
    assert leaked == []
    assert user.default_ccache.exists()


def test_spawn_fails_loudly_when_the_namespace_cannot_be_set_up(
    namespaced_hub_factory: Any, namespaced_user: sandbox.UnixUser
) -> None:
    user = namespaced_user
    missing = f"/nonexistent-pamkrb-{secrets.token_hex(6)}"
    hub = namespaced_hub_factory(hidden_paths=[missing])

    response = hub.login(user.name, user.password)
    assert "/hub/login" not in response.url  # the login worked; the spawn is what fails

    reason = f"NamespacedSpawner: mounting an empty tmpfs over {missing} failed: No such file or directory"
    sandbox.wait_until(lambda: reason in hub.log_text(), timeout=30, message="the pre-exec's reason in the hub log")
    sandbox.wait_until(
        lambda: f"the server of {user.name} was not started" in hub.log_text(),
        timeout=30,
        message="the spawner's error in the hub log",
    )
    assert sandbox.singleuser_pids(user.uid) == []
    model = response.session.get(f"{hub.url}/hub/api/user", timeout=10)
    assert model.status_code == 200, model.text
    assert model.json()["servers"] == {}
    page = response.session.get(f"{hub.url}/user/{user.name}/api/status", timeout=10, allow_redirects=False)
    assert page.status_code != 200
