"""Another distribution on this machine: a Debian release installed with
debootstrap into a directory and entered with ``unshare --root``.

What runs inside sees that release's glibc, Python, libpam, libkrb5, PAM
stacks and ``/etc/passwd``, and shares this machine's kernel and loopback
network, so it reaches a KDC or a proxy started outside. Each command runs in
a private mount namespace with its own ``/proc``: nothing is mounted on the
host, so deleting the directory afterwards can never reach host files.

A fresh debootstrap takes about a minute; the result is kept under
``/var/cache/pamkrb`` (keyed by release, packages and mirror) and copied for
each :class:`DebianRoot`, so later runs start in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .process import SandboxError, _run

MIRROR = os.environ.get("PAMKRB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE_DIR = Path("/var/cache/pamkrb")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _base_root(suite: str, packages: Sequence[str], mirror: str) -> Path:
    """The cached debootstrap of ``suite`` with ``packages``; made on first use."""
    key = hashlib.sha256(f"{suite} {mirror} {' '.join(sorted(packages))}".encode()).hexdigest()[:12]
    base = CACHE_DIR / f"debian-{suite}-{key}"
    if (base / ".complete").exists():
        return base
    CACHE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".debian-{suite}-", dir=CACHE_DIR))
    # It becomes "/" inside: every user must be able to traverse it.
    staging.chmod(0o755)
    try:
        args = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(staging), mirror]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SandboxError(f"{' '.join(args)} exited with {result.returncode}:\n{result.stdout[-3000:]}")
        # Packages downloaded by debootstrap are not needed in every copy.
        for deb in (staging / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        (staging / ".complete").touch()
        shutil.rmtree(base, ignore_errors=True)
        staging.rename(base)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return base


class DebianRoot:
    """A private copy of a Debian release's root file system.

    ``packages`` are installed by debootstrap on top of ``minbase``. The copy
    lives in a 0700 directory under /var/tmp and is removed by :meth:`close`,
    after every process still running inside it has been killed.
    """

    def __init__(self, suite: str, packages: Sequence[str] = (), *, mirror: str = MIRROR) -> None:
        self.suite = suite
        base = _base_root(suite, packages, mirror)
        self.dir = Path(tempfile.mkdtemp(prefix=f"pamkrb-{suite}-", dir="/var/tmp"))
        self.path = self.dir / "root"
        try:
            # cp -a keeps owners, modes, device nodes and links as they are.
            _run(["cp", "-a", "--", str(base), str(self.path)])
            (self.path / ".complete").unlink()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def __enter__(self) -> DebianRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def host_path(self, path: str | os.PathLike[str]) -> Path:
        """Where ``path`` inside the root is on this machine."""
        return self.path / Path(path).relative_to("/")

    def command(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str = "/") -> list[str]:
        """The argument list that runs ``args`` inside the root with only ``env`` (plus PATH, LANG, HOME)."""
        environment = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        return [
            "unshare",
            "--mount",
            "--propagation=private",
            "--mount-proc",
            f"--root={self.path}",
            f"--wd={cwd}",
            "/usr/bin/env",
            "-i",
            *(f"{key}={value}" for key, value in environment.items()),
            *args,
        ]

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside the root; raise SandboxError with its output if it fails and ``check``."""
        result = subprocess.run(
            self.command(args, env=env),
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise SandboxError(
                f"in {self.suite}: {' '.join(args)} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def popen(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str = "/", **kwargs: Any):
        """Start ``args`` inside the root in a session of its own."""
        return subprocess.Popen(
            self.command(args, env=env, cwd=cwd), stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
        )

    def add_user(self, name: str, password: str) -> pwd.struct_passwd:
        """Create ``name`` in the root's /etc/passwd with ``password``; return its entry.

        The uid is chosen free on this machine too, so the root's processes and
        files never look like a host account's.
        """
        taken = {entry.pw_uid for entry in pwd.getpwall()}
        uid = next(candidate for candidate in range(42000 + secrets.randbelow(1000), 60000) if candidate not in taken)
        self.run(["useradd", "--create-home", "--shell", "/bin/bash", "--uid", str(uid), "--user-group", name])
        self.run(["chpasswd"], input=f"{name}:{password}\n")
        for line in self.host_path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return pwd.struct_passwd(
                    (fields[0], "x", int(fields[2]), int(fields[3]), fields[4], fields[5], fields[6])
                )
        raise SandboxError(f"useradd in {self.suite} did not add {name}")

    def processes(self) -> list[int]:
        """PIDs of processes whose root directory is this root."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "root")) == self.path:
                    pids.append(int(entry.name))
        return pids

    def close(self) -> None:
        """Kill what still runs inside, then delete the copy."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
