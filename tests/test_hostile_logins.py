"""Local users (and admin slips) against the login itself.

- A user holds an fcntl lock on their own keytab and logs in again and again:
  nobody else's login may stall (attack 1).
- PAM service names that would let root in without a password, or that are
  not what they seem, are refused when the authenticator is built (attack 4).
- A user whose password was removed must not get in with an empty password,
  even on a stack with ``nullok`` (attack 5).
- The hub reads keytabs as root: a symlinked directory on the keytab path and
  a huge keytab are refused, and others keep logging in (attack 8).

Everything goes through the real login form of a real hub against a real KDC,
except attack 4, which builds the authenticator in-process as the hub does at
start-up.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from traitlets import TraitError

import sandbox
from conftest import assert_no_cache, assert_user_cache, form_login, logged_in, require_root
from pamkrb import PAMKerberosAuthenticator

KDC_TIMEOUT = 10
# A login of an unaffected user, including its keytab kinit, takes well under
# a second here; this leaves room for a loaded machine yet stays far below
# kdc_timeout, the time a stalled attempt takes to fail.
PROMPT_LOGIN = 4.0


def errors_in(hub: sandbox.Hub) -> list[str]:
    return [line for line in hub.log_text().splitlines() if line.startswith("[E ")]


# -- attack 1: a lock on one's own keytab ------------------------------------------------

LOCK_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()  # held until the test closes our stdin or kills us
"""


def lock_waiters(inode: int) -> list[str]:
    """Processes blocked waiting for a lock on ``inode`` (the "->" lines of /proc/locks)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return [line for line in lines if "->" in line and f":{inode} " in line]


def test_a_user_locking_their_keytab_stalls_no_one_else(hub_factory, realm, user):
    """fcntl locks are advisory, but libkrb5 takes a shared one on every keytab
    it reads, and waits for it. The fixed hub reads keytabs without locks and
    runs at most one attempt per user, so five logins of the locker cannot
    fill its Kerberos threads."""
    hub = hub_factory({"PAMKerberosAuthenticator.kdc_timeout": KDC_TIMEOUT})
    keytab = user.home / f"{user.name}.keytab"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(keytab)],
        user=user.uid,
        group=user.gid,
        extra_groups=[],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    stalled: list[threading.Thread] = []
    answered: list[int] = []
    waiting_seen: list[str] = []
    try:
        assert holder.stdout.readline().strip() == "locked"
        inode = os.stat(keytab).st_ino

        def locker_login() -> None:
            answered.append(form_login(hub, user.name, user.password, timeout=120).status_code)

        for _ in range(5):
            thread = threading.Thread(target=locker_login, daemon=True)
            thread.start()
            stalled.append(thread)

        # On a hub that waits for the lock, go on once it does, so the other
        # logins meet a stalled hub; a hub that does not wait answers the five.
        def hub_stalled_or_answered() -> bool:
            waiting_seen.extend(lock_waiters(inode))
            return bool(waiting_seen) or len(answered) == 5

        sandbox.wait_until(hub_stalled_or_answered, timeout=KDC_TIMEOUT, message="the locker's logins")

        with sandbox.provisioned_users(realm, 2, "pko") as others:
            for other in others:
                started = time.monotonic()
                response = form_login(hub, other.name, other.password)
                seconds = time.monotonic() - started
                assert logged_in(response), f"login of {other.name} refused: {errors_in(hub)[-3:]}"
                assert seconds < PROMPT_LOGIN, f"login of {other.name} took {seconds:.1f} s"
                sandbox.wait_until(
                    lambda other=other: realm.klist_valid(other.default_ccache),
                    timeout=PROMPT_LOGIN,
                    message=f"the cache of {other.name}",
                )
                assert_user_cache(realm, other)
                waiting_seen.extend(lock_waiters(inode))

        assert waiting_seen == [], f"the hub waited for the user's lock on their keytab: {waiting_seen}"
    finally:
        holder.kill()
        holder.communicate(timeout=10)  # also closes the pipes
        for thread in stalled:
            thread.join(timeout=KDC_TIMEOUT + 30)


# -- attack 4: PAM services that let root in -------------------------------------------

UNSAFE_STACKS = {
    "include-capitalised": "auth Include su\naccount required pam_unix.so\n",
    "facility-capitalised": "AUTH sufficient pam_rootok.so\nauth required pam_unix.so nodelay\n",
    "permit-done": "auth [success=done default=ignore] pam_permit.so\nauth required pam_unix.so nodelay\n",
}


def build(service: str, realm: sandbox.Realm) -> PAMKerberosAuthenticator:
    """What the hub does at start-up with ``c.PAMKerberosAuthenticator.service``."""
    return PAMKerberosAuthenticator(service=service, realm=realm.name, allow_all=True)


@pytest.fixture
def pam_file() -> Iterator[Callable[..., str]]:
    """Write a PAM service file (in /etc/pam.d by default); its service name.
    Every file written is removed at teardown."""
    written: list[Path] = []

    def write(text: str, directory: str = "/etc/pam.d") -> str:
        name = f"pamkrb-hostile-{secrets.token_hex(4)}"
        path = Path(directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(path)
        path.write_text(f"# Written by pamkrb's tests/test_hostile_logins.py; safe to delete.\n{text}")
        path.chmod(0o644)
        return name

    require_root()
    try:
        yield write
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def test_service_name_in_capitals_is_refused(realm):
    """libpam lower-cases service names: "SU" runs /etc/pam.d/su, whose
    pam_rootok lets root (the hub) in with any password. A check that compares
    names case-sensitively misses it."""
    with pytest.raises(TraitError, match="SU"):
        build("SU", realm)


@pytest.mark.parametrize("stack", list(UNSAFE_STACKS))
def test_unsafe_stack_spelled_differently_is_refused(realm, pam_file, stack):
    """libpam reads facilities and controls case-insensitively and ends the
    stack on [success=done]: each of these lets any password in."""
    service = pam_file(UNSAFE_STACKS[stack])
    with pytest.raises(TraitError, match=service):
        build(service, realm)


def test_stack_only_in_the_vendor_directory_is_refused(realm, pam_file):
    """/usr/lib/pam.d is where libpam looks when /etc/pam.d has no such file
    (on builds with a vendor directory); a check of /etc/pam.d alone misses it."""
    service = pam_file("auth sufficient pam_rootok.so\n", directory="/usr/lib/pam.d")
    with pytest.raises(TraitError, match=service):
        build(service, realm)


def test_service_that_does_not_exist_is_refused(realm):
    service = f"pamkrb-hostile-missing-{secrets.token_hex(4)}"
    assert not (Path("/etc/pam.d") / service).exists()
    with pytest.raises(TraitError, match=service):
        build(service, realm)


@pytest.mark.parametrize("service", ["login", sandbox.PAM_TEST_SERVICE])
def test_ordinary_login_services_are_accepted(realm, pam_service, service):
    assert build(service, realm).service == service


def test_hub_with_service_SU_lets_no_wrong_password_in(hub_factory, user):
    """End to end: the hub either refuses to start, or refuses a wrong password."""
    try:
        hub = hub_factory(service="SU")
    except sandbox.SandboxError as e:
        start_error = str(e)
    else:
        start_error = None
    if start_error is not None:
        assert "SU" in start_error
        return
    response = form_login(hub, user.name, "not-" + user.password)
    assert not logged_in(response)
    assert response.status_code == 403
    assert_no_cache(user)


# -- attack 5: an empty password ---------------------------------------------------------


@pytest.fixture
def nullok_service(pam_file) -> str:
    """pam_unix with nullok: a user without a password passes it with an empty one."""
    return pam_file("auth required pam_unix.so nullok nodelay\naccount required pam_unix.so\n")


@pytest.mark.parametrize("stack", ["nullok", "login"])
def test_empty_password_of_a_user_without_password_is_refused(hub_factory, user, nullok_service, stack):
    """Debian's stock `login` reaches pam_unix nullok through common-auth."""
    subprocess.run(["passwd", "-d", user.name], check=True, capture_output=True)
    hub = hub_factory(service=nullok_service if stack == "nullok" else "login")

    response = form_login(hub, user.name, "")

    assert not logged_in(response), f"an empty password got {user.name} in"
    assert response.status_code == 403
    assert not any(c.name.endswith("jupyterhub-hub-login") for c in response.session.cookies)
    home = response.session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=10)
    assert home.status_code == 302
    assert "/hub/login" in home.headers["Location"]
    assert_no_cache(user)


# -- attack 8: keytabs the hub must not read -----------------------------------------------


@pytest.fixture
def elsewhere() -> Iterator[Path]:
    """A root-made 0755 directory outside every home."""
    require_root()
    path = Path("/srv") / f"pamkrb-hostile-{secrets.token_hex(4)}"
    path.mkdir(mode=0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_symlinked_directory_on_the_keytab_path_is_refused(hub_factory, realm, user, elsewhere):
    """~/.k is the user's symlink to a directory elsewhere. Root must not follow
    a user's links anywhere on the path (today to a valid keytab of theirs,
    tomorrow to another user's), so the login is refused and the log says why."""
    realm.write_keytab(f"{user.name}@{realm.name}", elsewhere / f"{user.name}.keytab", user.uid, user.gid)
    assert user.run(["ln", "-s", str(elsewhere), str(user.home / ".k")]).returncode == 0
    hub = hub_factory({"PAMKerberosAuthenticator.keytab_template": "{home}/.k/{username}.keytab"})

    response = form_login(hub, user.name, user.password)

    assert not logged_in(response)
    assert response.status_code == 403
    refusals = [line for line in errors_in(hub) if user.name in line]
    assert refusals, "the hub log must say why the login was refused"
    assert any("symbolic link" in line or "symlink" in line for line in refusals), refusals
    assert_no_cache(user)


def test_two_megabyte_keytab_is_refused_and_others_log_in(hub_factory, realm, user):
    keytab = user.home / f"{user.name}.keytab"
    garbage = b"\x05\x02" + os.urandom(2 * 1024 * 1024 - 2)
    fd = os.open(keytab, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    try:
        os.write(fd, garbage)
    finally:
        os.close(fd)
    hub = hub_factory({"PAMKerberosAuthenticator.kdc_timeout": KDC_TIMEOUT})

    response = form_login(hub, user.name, user.password)

    assert not logged_in(response)
    assert response.status_code == 403
    refusals = [line for line in errors_in(hub) if user.name in line]
    assert any(str(keytab) in line for line in refusals), refusals
    assert_no_cache(user)
    with sandbox.provisioned_user(realm, "pko") as other:
        started = time.monotonic()
        response = form_login(hub, other.name, other.password)
        assert logged_in(response), errors_in(hub)[-3:]
        assert time.monotonic() - started < PROMPT_LOGIN
        assert_user_cache(realm, other)
