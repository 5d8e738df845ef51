"""A single-user server "on another host": LocalProcessSpawner in its own mount namespace.

The server shares the hub's network (so it still reaches the hub and the KDC on
loopback) and the file system needed to run Python, but gets a fresh, empty
``/tmp`` (so it cannot see the credential cache ``/tmp/krb5cc_<uid>`` the hub
writes) and empty read-only directories over ``hidden_paths`` (where the
keytabs live). That is what a server on a second machine sees, without a second
machine.

This module is imported by the hub process (``Hub(import_paths=...)`` puts
``tools/`` on its ``sys.path``), not by ``sandbox/__init__.py``: it needs
JupyterHub, the rest of the package only the standard library.

Python 3.11 has no ``os.unshare`` or ``os.mount``, so libc is called through
ctypes. The calls run in the pre-exec function, that is in the forked child,
as root, before JupyterHub's own pre-exec drops privileges.
"""

from __future__ import annotations

import ctypes
import os
import subprocess

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import List, TraitError, Unicode, validate

# From <sched.h> and <sys/mount.h> (Linux; the same on x86-64 and arm64).
CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 0x40000

# The source names show up in /proc/<pid>/mountinfo, so a test (or an admin)
# can tell these mounts from any other tmpfs.
TMP_SOURCE = "pamkrb-ns-tmp"
HIDDEN_SOURCE = "pamkrb-ns-hidden"

# Loaded in the hub, never in the forked child: dlopen takes locks that another
# hub thread may have held at fork time.
_libc = ctypes.CDLL(None, use_errno=True)
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_unshare.restype = ctypes.c_int
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_mount.restype = ctypes.c_int


class NamespaceError(OSError):
    """Setting up the server's mount namespace failed; the server must not start."""


def _check(result: int, what: str) -> None:
    """Raise unless a libc call returned 0.

    The message also goes straight to file descriptor 2 (the hub's log): an
    exception raised in a pre-exec function reaches the parent only as
    "Exception occurred in preexec_fn.", without its text.
    """
    if result == 0:
        return
    errno = ctypes.get_errno()
    message = f"NamespacedSpawner: {what} failed: {os.strerror(errno)}; refusing to start the server un-namespaced\n"
    os.write(2, message.encode(errors="replace"))
    raise NamespaceError(errno, message.strip())


def enter_private_mount_namespace(hidden_paths: list[bytes]) -> None:
    """Move the calling process into a new mount namespace with a fresh /tmp
    and an empty read-only tmpfs over each of ``hidden_paths``.

    Needs CAP_SYS_ADMIN (root). Meant for a pre-exec function: it changes the
    calling process's view of the file system for good.
    """
    _check(_unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # The new namespace starts with copies of the host's mounts, in the same
    # peer groups: where / is a shared mount (systemd makes it one), the
    # tmpfs mounted below would propagate back and cover the hub's own /tmp.
    # Making every mount private first cuts that link in both directions.
    _check(_mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making / recursively private")
    _check(
        _mount(TMP_SOURCE.encode(), b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=1777"),
        "mounting a tmpfs on /tmp",
    )
    for path in hidden_paths:
        # Empty, root-owned, 0755 and read-only: the user can list it and sees
        # nothing, and cannot plant files that would look like the host's.
        _check(
            _mount(
                HIDDEN_SOURCE.encode(),
                path,
                b"tmpfs",
                MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                b"mode=0755,uid=0,gid=0",
            ),
            f"mounting an empty tmpfs over {os.fsdecode(path)}",
        )


class NamespacedSpawner(LocalProcessSpawner):
    """LocalProcessSpawner whose server runs in a private mount namespace:
    fresh /tmp, ``hidden_paths`` covered by empty directories, same network."""

    hidden_paths = List(
        Unicode(),
        config=True,
        help="""
        Absolute paths of directories the server must not see (for example the
        directory holding the users' keytabs). Each is covered, inside the
        server's mount namespace only, by an empty read-only tmpfs owned by
        root, mode 0755. A path that does not exist makes every spawn fail.
        Default: none (only /tmp is replaced).
        """,
    )

    @validate("hidden_paths")
    def _validate_hidden_paths(self, proposal):
        # The pre-exec runs before JupyterHub's chdir; a relative path would
        # be resolved against whatever the hub's working directory is.
        relative = [p for p in proposal.value if not os.path.isabs(p)]
        if relative:
            raise TraitError(f"NamespacedSpawner.hidden_paths must be absolute: {relative}")
        return proposal.value

    def make_preexec_fn(self, name):
        drop_privileges = super().make_preexec_fn(name)
        # Encoded here, in the hub: the child should do as little as possible
        # between fork and exec.
        hidden = [os.fsencode(p) for p in self.hidden_paths]

        def preexec() -> None:
            # Namespace first, while still root; JupyterHub's pre-exec then
            # drops to the user and changes to their home (which stays visible).
            enter_private_mount_namespace(hidden)
            drop_privileges()

        return preexec

    async def start(self):
        try:
            return await super().start()
        except subprocess.SubprocessError as e:
            # Popen reports any pre-exec exception only as "Exception occurred
            # in preexec_fn."; say where the reason is.
            raise RuntimeError(
                f"NamespacedSpawner: the server of {self.user.name} was not started: its pre-exec "
                f"function failed ({e}); the reason (mount namespace or privilege drop) is in the "
                "hub's log just above"
            ) from e
