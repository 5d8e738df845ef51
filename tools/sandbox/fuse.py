"""FUSE as an unprivileged user can use it: ``/dev/fuse`` opened to everyone
for a while, and a ``bindfs`` mount made by a sandbox user through the
setuid-root ``fusermount3`` (Debian's ``fuse3`` and ``bindfs`` packages).

Mounted without ``allow_other``, such a file system refuses every other uid,
root included: ``stat`` of the mount point fails with EACCES, and root cannot
rename or remove it (EBUSY). What a local user can do to another user's cache
path in a world-writable directory such as /tmp.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .process import SandboxError
from .users import UnixUser

FUSE_DEVICE = Path("/dev/fuse")


@contextlib.contextmanager
def fuse_device_mode(mode: int) -> Iterator[None]:
    """``/dev/fuse`` with permission bits ``mode`` (0666 is udev's default on
    most distributions) inside the block; its own mode again afterwards."""
    saved = stat.S_IMODE(os.stat(FUSE_DEVICE).st_mode)
    os.chmod(FUSE_DEVICE, mode)
    try:
        yield
    finally:
        os.chmod(FUSE_DEVICE, saved)


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def is_mount_point(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a mount point in this process's mount namespace.

    Read from /proc/self/mountinfo, not from ``stat``: root cannot stat a FUSE
    mount point of another user's.
    """
    target = os.fspath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return any(_unescape(line.split()[4]) == target for line in f)


@contextlib.contextmanager
def user_fuse_mount(user: UnixUser, source: Path, mountpoint: Path) -> Iterator[None]:
    """``bindfs --no-allow-other source mountpoint`` run as ``user`` (who must
    own both directories, and /dev/fuse must be open to them); unmounted on exit:
    by the user with ``fusermount3 -u``, else by root with a lazy ``umount``."""
    result = user.run(["bindfs", "--no-allow-other", str(source), str(mountpoint)])
    if result.returncode != 0 or not is_mount_point(mountpoint):
        raise SandboxError(f"bindfs as {user.name} on {mountpoint} failed ({result.returncode}): {result.stderr}")
    try:
        yield
    finally:
        user.run(["fusermount3", "-u", str(mountpoint)])
        if is_mount_point(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
        if is_mount_point(mountpoint):
            raise SandboxError(f"{mountpoint} is still mounted")
