"""Unix users and PAM: sandbox accounts (marked by their GECOS comment) with
principals and keytabs, the fast PAM test service, and what their processes run."""

from __future__ import annotations

import contextlib
import dataclasses
import pwd
import secrets
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .process import SandboxError, _run, wait_until
from .realm import Realm

PAM_TEST_SERVICE = "pamkrb-test"
# pam_unix without the 2-3 s failure delay of the stock `login` service, so
# negative tests stay fast. No pam_rootok: root must not get in for free.
# The text is also how remove_pam_test_service recognises its own file, so it
# still names tools/sandbox.py: files written by earlier runs stay removable.
PAM_TEST_SERVICE_TEXT = """\
# Written by pamkrb's test harness (tools/sandbox.py); safe to delete.
auth     required pam_unix.so nodelay
account  required pam_unix.so
"""
# GECOS comment that marks accounts created here, so a leftover from an
# interrupted run can be recognised and removed safely.
SANDBOX_GECOS = "pamkrb sandbox user"


def _pids_of_uid(uid: int) -> list[int]:
    """Live processes owned by ``uid``; zombies (already dead, awaiting their
    parent's wait) are left out, since killing them is neither needed nor possible."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            # The state follows the parenthesised command name, which may itself
            # contain spaces and parentheses.
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state != "Z":
            pids.append(int(entry.name))
    return pids


@dataclasses.dataclass
class UnixUser:
    """A local account with a random password, created with ``useradd``."""

    name: str
    uid: int
    gid: int
    home: Path
    password: str

    @property
    def default_ccache(self) -> Path:
        """MIT's default cache path for this user (pamkrb's default target)."""
        return Path(f"/tmp/krb5cc_{self.uid}")

    @classmethod
    def create(cls, name_prefix: str = "pkt", *, name: str | None = None) -> UnixUser:
        """Create a user ``<prefix><6 random lowercase letters>`` (or ``name``)."""
        if name is None:
            suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
            name = f"{name_prefix}{suffix}"
        password = secrets.token_urlsafe(15)
        _run(["useradd", "-m", "-s", "/bin/bash", "-c", SANDBOX_GECOS, name])
        user: UnixUser | None = None
        try:
            # chpasswd reads "name:password" from stdin; never on a command line.
            _run(["chpasswd"], input=f"{name}:{password}\n")
            entry = pwd.getpwnam(name)
            user = cls(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), password)
        finally:
            if user is None:
                subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        return user

    @classmethod
    def existing(cls, name: str) -> UnixUser | None:
        """The sandbox-created account ``name``, or None if there is none."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        if entry.pw_gecos != SANDBOX_GECOS:
            raise SandboxError(f"user {name} exists and was not created by the sandbox")
        return cls(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), "")

    def kill_processes(self, timeout: float = 10) -> None:
        """SIGKILL everything running as this user and wait until it is gone."""
        subprocess.run(["pkill", "-KILL", "-u", str(self.uid)], check=False)
        wait_until(
            lambda: not _pids_of_uid(self.uid),
            timeout=timeout,
            message=f"processes of {self.name} to exit",
        )

    def remove(self) -> None:
        """Kill the user's processes, delete account, home and cache."""
        with contextlib.suppress(SandboxError):
            self.kill_processes()
        subprocess.run(["userdel", "-r", self.name], capture_output=True, check=False)
        # unlink never follows: a planted symlink is removed, not its target.
        with contextlib.suppress(FileNotFoundError):
            self.default_ccache.unlink()

    def run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command as this user (no shell, no su)."""
        return subprocess.run(
            args,
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )


def pam_service_path(name: str = PAM_TEST_SERVICE) -> Path:
    return Path("/etc/pam.d") / name


def install_pam_test_service(name: str = PAM_TEST_SERVICE) -> Path:
    """Write the fast pam_unix test service to /etc/pam.d/<name>."""
    path = pam_service_path(name)
    if not path.exists() or path.read_text() != PAM_TEST_SERVICE_TEXT:
        path.write_text(PAM_TEST_SERVICE_TEXT)
        path.chmod(0o644)
    return path


def remove_pam_test_service(name: str = PAM_TEST_SERVICE) -> None:
    """Delete /etc/pam.d/<name> if it is the file this module writes."""
    path = pam_service_path(name)
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == PAM_TEST_SERVICE_TEXT:
            path.unlink()


def singleuser_pids(uid: int) -> list[int]:
    """PIDs of ``jupyterhub-singleuser`` processes running as ``uid``."""
    found = []
    for pid in _pids_of_uid(uid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"jupyterhub-singleuser") for arg in argv[:3]):
            found.append(pid)
    return found


def process_environ(pid: int) -> dict[str, str]:
    """The environment a process started with (needs root for other users)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def server_token(uid: int) -> str:
    """The JUPYTERHUB_API_TOKEN of the user's running single-user server:
    the one credential the hub's ticket API answers to."""
    pids = singleuser_pids(uid)
    if not pids:
        raise LookupError(f"no single-user server runs as uid {uid}")
    return process_environ(pids[0])["JUPYTERHUB_API_TOKEN"]


def foreign_sandbox_uids() -> set[int]:
    """uids of sandbox accounts that exist right now (other tests, concurrent runs)."""
    return {entry.pw_uid for entry in pwd.getpwall() if entry.pw_gecos == SANDBOX_GECOS}


@contextlib.contextmanager
def provisioned_user(realm: Realm, name_prefix: str = "pkt", *, name: str | None = None) -> Iterator[UnixUser]:
    """A user with principal ``<name>@REALM`` and keytab ``~/<name>.keytab``."""
    user = UnixUser.create(name_prefix, name=name)
    try:
        principal = realm.add_principal(user.name)
        realm.write_keytab(principal, user.home / f"{user.name}.keytab", user.uid, user.gid)
        yield user
    finally:
        user.remove()


@contextlib.contextmanager
def provisioned_users(realm: Realm, count: int, name_prefix: str = "pkh") -> Iterator[list[UnixUser]]:
    """``count`` users, each with a principal and a 0600 keytab ``~/<name>.keytab``."""
    users: list[UnixUser] = []
    try:
        for _ in range(count):
            user = UnixUser.create(name_prefix)
            users.append(user)
            principal = realm.add_principal(user.name)
            realm.write_keytab(principal, user.home / f"{user.name}.keytab", user.uid, user.gid)
        yield users
    finally:
        for user in users:
            user.remove()
