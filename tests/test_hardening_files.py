"""Hostile files where pamkrb writes: things planted at the cache path, at
temporary-looking names, and unsafe cache directories.

Root writes each user's cache into a directory others can write to. Whatever
another user plants at the cache path is replaced, never written through and
never trusted, and never locks the user out; what it pointed to is not
modified (content, owner, mode, mtime and ctime are compared) and no
temporary file is left behind. An unsafe *directory* is the admin's to fix and
refuses the login with a message that names it. fs.protected_symlinks and
protected_fifos are 0 on the test machine, so the kernel does not help: these
tests see pamkrb's own checks. SECURITY.md points here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import stat
import types
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web

import sandbox
from pamkrb import PAMKerberosAuthenticator

VICTIM_TEXT = b"root's file: must never change\n"
# A margin above the realm's 10-hour maximum ticket life: every check renews.
ALWAYS_RENEW = 11 * 3600


@pytest.fixture
def victim_file(tmp_path: Path) -> Path:
    """A root-owned 0644 file in a root-owned 0755 directory on /tmp's file system."""
    tmp_path.chmod(0o755)
    path = tmp_path / "victim"
    path.write_bytes(VICTIM_TEXT)
    path.chmod(0o644)
    return path


@pytest.fixture
def cache(user: sandbox.UnixUser) -> Iterator[Path]:
    """The user's default cache path; whatever was planted there (a directory
    too) is removed before the user fixture's teardown, which only unlinks files."""
    yield user.default_ccache
    if os.path.isdir(user.default_ccache) and not os.path.islink(user.default_ccache):
        os.rmdir(user.default_ccache)


def log_in(auth: PAMKerberosAuthenticator, user: sandbox.UnixUser) -> Any:
    return asyncio.run(auth.get_authenticated_user(None, {"username": user.name, "password": user.password}))


def refused_reason(auth: PAMKerberosAuthenticator, user: sandbox.UnixUser, caplog: pytest.LogCaptureFixture) -> str:
    """Log in expecting the login page's 403; return what the hub log said."""
    caplog.clear()
    with caplog.at_level(logging.INFO), pytest.raises(web.HTTPError) as info:
        log_in(auth, user)
    assert info.value.status_code == 403
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "a refused login must say why in the hub log"
    return "\n".join(errors)


def assert_no_temp_files(directory: Path | str, user: sandbox.UnixUser) -> None:
    """No temporary file of this user's cache; other users' come and go with
    tests running concurrently."""
    left = sandbox.pamkrb_temp_files(directory, uids={user.uid})
    assert left == [], f"temporary files left behind: {left}"


def plant(kind: str, path: Path, victim: Path, attacker: sandbox.UnixUser) -> None:
    """Put a ``kind`` at ``path``, as the attacker where an unprivileged user can."""
    if kind == "symlink":
        # Root-planted: a root-owned link in /tmp is followed even with
        # fs.protected_symlinks=1, so only pamkrb's O_NOFOLLOW stands between.
        os.symlink(victim, path)
    elif kind == "symlink-by-user":
        assert attacker.run(["ln", "-s", str(victim), str(path)]).returncode == 0
    elif kind == "hardlink":
        # protected_hardlinks stops users from linking root's files; root can.
        os.link(victim, path)
    elif kind == "directory":
        assert attacker.run(["mkdir", str(path)]).returncode == 0
    elif kind == "fifo":
        assert attacker.run(["mkfifo", str(path)]).returncode == 0
    elif kind == "foreign-file":
        result = attacker.run(["sh", "-c", 'printf attacker > "$1"', "sh", str(path)])
        assert result.returncode == 0, result.stderr
    else:
        raise AssertionError(kind)


# The kind the hub's warning names for each plant.
PLANTED = {
    "symlink": "symbolic link",
    "symlink-by-user": "symbolic link",
    "hardlink": "hard link",
    "directory": "directory",
    "fifo": "fifo",
    "foreign-file": "file owned by another user",
}


def assert_users_own_cache(realm: sandbox.Realm, user: sandbox.UnixUser, path: Path) -> None:
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file"
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink) == (user.uid, user.gid, 0o600, 1)
    assert realm.klist_valid(path)


def moved_aside(cache: Path) -> list[Path]:
    return sorted(cache.parent.glob(f".{cache.name}.pamkrb-planted-*"))


@pytest.mark.parametrize("kind", list(PLANTED))
def test_planted_entry_at_cache_path_is_replaced_and_touches_nothing(
    pam_service, realm, user, cache, attacker, victim_file, caplog, kind
):
    plant(kind, cache, victim_file, attacker)
    victim_before = sandbox.FileState.of(victim_file)
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)

    with caplog.at_level(logging.WARNING):
        assert log_in(auth, user) is not None

    assert_users_own_cache(realm, user, cache)
    victim_after = sandbox.FileState.of(victim_file)
    if kind == "hardlink":
        # Unlinking one of its names is a change of the inode's link count,
        # so its ctime moves; content, owner, mode and mtime must not.
        victim_after = dataclasses.replace(victim_after, ctime_ns=victim_before.ctime_ns)
    assert victim_after == victim_before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(cache) in w and PLANTED[kind] in w for w in warnings), warnings
    aside = moved_aside(cache)
    try:
        if kind == "directory":
            # Moved, not emptied or entered: still the attacker's.
            assert len(aside) == 1, aside
            assert os.lstat(aside[0]).st_uid == attacker.uid
            assert os.listdir(aside[0]) == []
        else:
            assert aside == []
    finally:
        for path in aside:
            os.rmdir(path)
    assert_no_temp_files("/tmp", user)


def test_planted_links_at_temporary_names_are_never_used(pam_service, realm, user, victim_file, caplog):
    """Temporary names carry 64 random bits and are created with O_EXCL, so
    links planted at guessable names stay untouched and the login works."""
    guesses = [f".krb5cc_{user.uid}.pamkrb-{secrets.token_hex(8)}" for _ in range(64)]
    guesses += [f".krb5cc_{user.uid}.pamkrb-{'0' * 16}", f".krb5cc_{user.uid}.pamkrb-", f"krb5cc_{user.uid}.tmp"]
    planted = [Path("/tmp") / name for name in guesses]
    try:
        for path in planted:
            os.symlink(victim_file, path)
        before = {path: sandbox.FileState.of(path) for path in planted}
        victim_before = sandbox.FileState.of(victim_file)
        auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)

        assert log_in(auth, user) is not None

        assert {path: sandbox.FileState.of(path) for path in planted} == before
        assert sandbox.FileState.of(victim_file) == victim_before
        st = os.lstat(user.default_ccache)
        assert stat.S_ISREG(st.st_mode)
        assert (st.st_uid, st.st_gid) == (user.uid, user.gid)
        assert realm.klist_valid(user.default_ccache)
        extra = set(sandbox.pamkrb_temp_files(uids={user.uid})) - set(guesses)
        assert extra == set(), f"temporary files left behind: {extra}"
    finally:
        for path in planted:
            path.unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("mode", "owner", "message"),
    [
        (0o777, "root", "writable by others and not sticky"),
        (0o775, "root", "writable by its group and not sticky"),
        (0o755, "attacker", "owned by uid"),
    ],
)
def test_unsafe_cache_directory_refuses_login(pam_service, user, attacker, tmp_path, caplog, mode, owner, message):
    tmp_path.chmod(0o755)
    directory = tmp_path / "caches"
    directory.mkdir()
    directory.chmod(mode)
    if owner == "attacker":
        os.chown(directory, attacker.uid, attacker.gid)
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, ccache_template=f"{directory}/krb5cc_{{uid}}")

    reason = refused_reason(auth, user, caplog)

    assert message in reason, reason
    assert str(directory) in reason, reason
    assert os.listdir(directory) == []


@pytest.mark.parametrize("mode", [0o755, 0o1777])
def test_safe_cache_directories_work(pam_service, realm, user, tmp_path, mode):
    """0755 root is the configuration SECURITY.md recommends; 1777 is /tmp's."""
    tmp_path.chmod(0o755)
    directory = tmp_path / "caches"
    directory.mkdir()
    directory.chmod(mode)
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, ccache_template=f"{directory}/krb5cc_{{uid}}")
    assert log_in(auth, user) is not None
    cache = directory / f"krb5cc_{user.uid}"
    st = os.lstat(cache)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.uid, user.gid, 0o600)
    assert realm.klist_valid(cache)
    assert os.listdir(directory) == [cache.name]


def test_symlinked_directory_in_cache_path_refuses_login(pam_service, user, attacker, tmp_path, caplog):
    """ccache_template points into a directory that is (now) a link to one the
    attacker controls: the walk from / stops at the link."""
    tmp_path.chmod(0o755)
    lure = Path(attacker.home) / "lure"
    assert attacker.run(["mkdir", "-m", "0755", str(lure)]).returncode == 0
    os.symlink(lure, tmp_path / "caches")
    auth = PAMKerberosAuthenticator(
        service=pam_service, allow_all=True, ccache_template=f"{tmp_path}/caches/krb5cc_{{uid}}"
    )

    reason = refused_reason(auth, user, caplog)

    assert "symbolic link" in reason, reason
    assert f"{tmp_path}/caches" in reason, reason
    assert os.listdir(lure) == []


def test_renewal_replaces_a_symlink_planted_after_login(pam_service, realm, user, attacker, victim_file, caplog):
    """The hub's own renewals (spawn, refresh_user) replace a plant too."""
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, refresh_margin=ALWAYS_RENEW)
    assert log_in(auth, user) is not None
    user.default_ccache.unlink()
    plant("symlink-by-user", user.default_ccache, victim_file, attacker)
    victim_before = sandbox.FileState.of(victim_file)

    with caplog.at_level(logging.WARNING):
        # refresh_user renews only while a server of the user runs.
        running = types.SimpleNamespace(active=True, pending=None)
        hub_user = types.SimpleNamespace(name=user.name, spawners={"": running})
        assert asyncio.run(auth.refresh_user(hub_user)) is True

    assert any("symbolic link" in r.getMessage() for r in caplog.records)
    assert sandbox.FileState.of(victim_file) == victim_before
    assert_users_own_cache(realm, user, user.default_ccache)
    assert_no_temp_files("/tmp", user)


def test_a_cache_planted_by_another_user_is_never_fresh(pam_service, realm, user, attacker, caplog):
    """A well-formed cache holding a real ticket for the user's principal,
    owned by someone else: the hub does not call it fresh, it replaces it."""
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    assert log_in(auth, user) is not None
    forged = Path("/tmp") / f"pamkrb-forged-{secrets.token_hex(4)}"
    shutil_copy = user.default_ccache.read_bytes()
    forged.write_bytes(shutil_copy)
    os.chown(forged, attacker.uid, attacker.gid)
    forged.chmod(0o600)
    user.default_ccache.unlink()
    os.rename(forged, user.default_ccache)

    with caplog.at_level(logging.WARNING):
        asyncio.run(auth.tickets.ensure_fresh(user.name, "spawn"))

    assert_users_own_cache(realm, user, user.default_ccache)
    assert any("file owned by another user" in r.getMessage() for r in caplog.records)


def test_refresher_replaces_a_symlink_at_its_cache(realm, user, victim_file):
    """The server extension's renewal logic (TicketRefresher), here as root:
    a planted link is replaced by the rename, never written through."""
    from pamkrb.lifecycle import TicketSettings
    from pamkrb.refresher import TicketRefresher

    cache = user.default_ccache
    os.symlink(victim_file, cache)
    victim_before = sandbox.FileState.of(victim_file)
    refresher = TicketRefresher(
        TicketSettings(
            principal=f"{user.name}@{realm.name}",
            keytab=str(user.home / f"{user.name}.keytab"),
            ccache=str(cache),
            refresh_margin=60,
        )
    )

    async def trigger() -> dict[str, Any]:
        await refresher.trigger("save")
        return await refresher.status()

    status = asyncio.run(trigger())

    assert status["state"] == "valid", status
    assert refresher.renewals == 1
    assert sandbox.FileState.of(victim_file) == victim_before
    assert stat.S_ISREG(os.lstat(cache).st_mode)


# -- through a real hub ----------------------------------------------------------


def test_fifo_at_cache_path_is_replaced_through_the_hub(hub, realm, user, attacker):
    cache = user.default_ccache
    plant("fifo", cache, Path("/nonexistent"), attacker)

    response = hub.login(user.name, user.password)

    assert urllib.parse.urlparse(response.url).path != "/hub/login", response.text
    hub.wait_for_server(response.session, user.name)
    assert_users_own_cache(realm, user, cache)
    log = hub.log_text()
    assert f"{cache}: a fifo owned by" in log, log[-2000:]
    assert_no_temp_files("/tmp", user)


@pytest.mark.parametrize("planted_by", ["attacker", "root"])
def test_users_server_never_writes_through_a_symlink_planted_at_its_cache(
    hub_factory, realm, user, attacker, planted_by
):
    """A user's own server renews as that user. Another user waits for the
    cache to be gone and plants a link to the victim's file; the next save
    must not write through it (a root-owned link would even pass
    fs.protected_symlinks). The user cannot remove another's entry from
    sticky /tmp, so the server reports the failure, and the hub, as root,
    replaces the plant at its next renewal."""
    hub = hub_factory(
        {
            "PAMKerberosAuthenticator.refresh_margin": ALWAYS_RENEW,
            "PAMKerberosAuthenticator.refresh_interval": 0,
        }
    )
    session = sandbox.login_and_spawn(hub, user)
    base = f"{hub.url}/user/{user.name}"
    headers = {"X-XSRFToken": session.cookies.get("_xsrf", path=f"/user/{user.name}/") or ""}
    notes = user.home / "notes.txt"
    assert user.run(["sh", "-c", "printf 'my notes\\n' > notes.txt && chmod 644 notes.txt"]).returncode == 0
    before = sandbox.FileState.of(notes)
    renewals = session.get(f"{base}/pamkrb/api/status", timeout=10).json()["renewals"]

    user.default_ccache.unlink()
    if planted_by == "root":
        os.symlink(notes, user.default_ccache)
    else:
        assert attacker.run(["ln", "-s", str(notes), str(user.default_ccache)]).returncode == 0

    model = {"type": "file", "format": "text", "content": "saved"}
    response = session.put(f"{base}/api/contents/saved.txt", json=model, headers=headers, timeout=30)
    assert response.status_code in (200, 201), response.text

    def error_reported() -> dict[str, Any] | None:
        status = session.get(f"{base}/pamkrb/api/status", timeout=10).json()
        return status if status["last_error"] else None

    status = sandbox.wait_until(error_reported, timeout=20, interval=0.25, message="renewal error")
    assert str(user.default_ccache) in status["last_error"], status
    assert status["renewals"] == renewals
    assert sandbox.FileState.of(notes) == before
    assert os.path.islink(user.default_ccache)
    # The server's log (in the hub's log file) says why, too.
    sandbox.wait_until(lambda: "ticket renewal (save) failed" in hub.log_text(), timeout=10, message="the server's log")
    assert_no_temp_files("/tmp", user)


# -- the cache directories SECURITY.md recommends instead of /tmp ----------------------

USER_RENEWAL = (
    "import sys\n"
    "from pamkrb import _native\n"
    "from pamkrb.exceptions import PamkrbError\n"
    "try:\n"
    "    _native.obtain_ticket(sys.argv[1], sys.argv[2], sys.argv[3])\n"
    "except PamkrbError as e:\n"
    "    sys.exit(str(e))\n"
)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A root-owned 0755 directory every user can reach (tmp_path's parents are 0700)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="pamkrb-ccdir-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def renew_as(user: sandbox.UnixUser, realm: sandbox.Realm, cache: Path) -> Any:
    """What the user's server does: obtain_ticket as the user, into ``cache``."""
    import sys

    keytab = user.home / f"{user.name}.keytab"
    return user.run(
        [sys.executable, "-c", USER_RENEWAL, f"{user.name}@{realm.name}", str(keytab), str(cache)],
        env=realm.client_env(),
    )


def test_root_only_cache_directory_stops_plants_but_also_the_users_own_renewal(
    pam_service, realm, user, attacker, open_dir
):
    """/var/lib/pamkrb/krb5cc_{uid} in a 0755 root directory: nobody can plant,
    the hub can write, but the user's server cannot create its temporary file
    there, so server-side renewal fails (clearly) and only the hub renews."""
    directory = open_dir / "pamkrb"
    directory.mkdir(mode=0o755)
    cache = directory / f"krb5cc_{user.uid}"
    assert attacker.run(["ln", "-s", "/etc/passwd", str(cache)]).returncode != 0
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, ccache_template=f"{directory}/krb5cc_{{uid}}")
    assert log_in(auth, user) is not None
    assert realm.klist_valid(cache)

    renewal = renew_as(user, realm, cache)

    assert renewal.returncode != 0
    assert "could not create a temporary file" in renewal.stderr, renewal.stderr
    assert "Permission denied" in renewal.stderr, renewal.stderr


def test_per_user_cache_directory_stops_plants_and_keeps_server_renewal(pam_service, realm, user, attacker, open_dir):
    """/var/lib/pamkrb/{username}/krb5cc: a 0755 root parent, one 0700
    directory per user owned by that user. Others cannot plant; the hub and
    the user's own server both write."""
    parent = open_dir / "pamkrb"
    parent.mkdir(mode=0o755)
    directory = parent / user.name
    directory.mkdir(mode=0o700)
    os.chown(directory, user.uid, user.gid)
    cache = directory / "krb5cc"
    assert attacker.run(["ln", "-s", "/etc/passwd", str(cache)]).returncode != 0
    assert attacker.run(["ln", "-s", "/etc/passwd", str(parent / "x")]).returncode != 0
    auth = PAMKerberosAuthenticator(
        service=pam_service, allow_all=True, ccache_template=f"{parent}/{{username}}/krb5cc"
    )
    assert log_in(auth, user) is not None
    first = os.stat(cache).st_ino

    renewal = renew_as(user, realm, cache)

    assert renewal.returncode == 0, renewal.stderr
    st = os.lstat(cache)
    assert st.st_ino != first
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.uid, user.gid, 0o600)
    assert realm.klist_valid(cache)
    assert os.listdir(directory) == ["krb5cc"]
