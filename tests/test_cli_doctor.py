"""`pamkrb doctor USER` against the real KDC, PAM stacks, keytabs and caches.

Each test breaks one link (account, PAM service, keytab, KDC, cache) and
checks that the installed `pamkrb` command reports it with a ✗ line and a
fix, and exits 1; the healthy case exits 0. A risk that is not (yet) a broken
link, such as a cache path other users can lock with a FUSE mount, is a !
line with a fix and leaves the exit status 0. The command runs as a
subprocess with the test realm's KRB5_CONFIG, as an admin would run it.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox
from pamkrb import _native

NOBODY = 65534


def write_config(directory: Path, **settings: object) -> Path:
    config = {"JupyterHub.authenticator_class": "pamkrb", **settings}
    path = directory / "jupyterhub_config.py"
    lines = ["c = get_config()  # noqa: F821", *(f"c.{key} = {value!r}" for key, value in config.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path, pam_service: str) -> Path:
    """A hub config like the tests' hubs use: pamkrb on the fast PAM test service."""
    return write_config(tmp_path, **{"PAMKerberosAuthenticator.service": pam_service})


def doctor(realm: sandbox.Realm, username: str, config: Path | None) -> subprocess.CompletedProcess[str]:
    args = ["doctor", username] + (["--config", str(config)] if config else [])
    return sandbox.run_pamkrb(args, env=realm.client_env())


def problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("✗")]


def assert_only_problem(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Exit 1 and exactly one ✗ line, holding every ``expected`` text."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    found = problems(result)
    assert len(found) == 1, result.stdout
    for text in expected:
        assert text in found[0], result.stdout


def keytab_of(user: sandbox.UnixUser) -> Path:
    return user.home / f"{user.name}.keytab"


def give_ticket(realm: sandbox.Realm, user: sandbox.UnixUser, **kwargs: object) -> None:
    """Install the user's cache as pamkrb would (owner user, 0600) unless told otherwise."""
    owner = {"uid": user.uid, "gid": user.gid, **kwargs}
    _native.obtain_ticket(realm.qualify(user.name), str(keytab_of(user)), str(user.default_ccache), **owner)


@pytest.fixture
def extra_pam_service() -> Iterator[Path]:
    """A path /etc/pam.d/pamkrb-doctor-<random>, removed afterwards."""
    path = Path("/etc/pam.d") / f"pamkrb-doctor-{secrets.token_hex(4)}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def test_all_good(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)

    result = doctor(realm, user.name, config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert problems(result) == []
    out = result.stdout
    assert f"✓ user {user.name}" in out
    assert "no password-less path for root" in out
    assert f"✓ keytab {keytab_of(user)}: owner {user.name}, mode 0600, key for {user.name}@{realm.name} (kvno" in out
    assert f"✓ KDC: ticket for {user.name}@{realm.name} obtained" in out
    assert f"✓ credential cache {user.default_ccache}: owner {user.name}, mode 0600" in out
    assert "All checks passed." in out


def test_principal_without_a_realm_is_the_hubs_principal(realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path):
    """Doctor checks the principal the hub uses: one resolve_user for both."""
    from pamkrb import PAMKerberosAuthenticator

    settings = {"PAMKerberosAuthenticator.principal_template": "{username}"}
    config = write_config(tmp_path, **settings, **{"PAMKerberosAuthenticator.service": "login"})
    hub_side = PAMKerberosAuthenticator(principal_template="{username}", realm=realm.name).tickets.resolve_user(
        user.name
    )

    result = doctor(realm, user.name, config)

    assert f"✓ principal: {hub_side.principal}\n" in result.stdout, result.stdout
    assert hub_side.principal == f"{user.name}@{realm.name}"
    assert f"✓ KDC: ticket for {hub_side.principal} obtained" in result.stdout


def test_broker_warns_about_a_keytab_its_user_can_read(realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path):
    give_ticket(realm, user)
    settings = {"PAMKerberosAuthenticator.service": "login", "PAMKerberosAuthenticator.ticket_broker": True}
    config = write_config(tmp_path, **settings)

    result = doctor(realm, user.name, config)

    assert result.returncode == 0, result.stdout
    warning = next(line for line in result.stdout.splitlines() if line.startswith(f"! keytab {keytab_of(user)}"))
    assert "readable by" in warning
    assert "ticket_broker is on" in warning
    assert f"chown root: {keytab_of(user)}" in result.stdout
    # Root's alone: the layout the broker allows, no warning.
    os.chown(keytab_of(user), 0, 0)
    quiet = doctor(realm, user.name, config)
    assert not [line for line in quiet.stdout.splitlines() if line.startswith("! keytab")], quiet.stdout


def test_kdc_check_leaves_the_users_cache_alone(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)
    before = os.stat(user.default_ccache)

    doctor(realm, user.name, config)

    after = os.stat(user.default_ccache)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_missing_user(realm: sandbox.Realm, config: Path) -> None:
    result = doctor(realm, f"pktnone{secrets.token_hex(3)}", config)

    assert_only_problem(result, "not in the password database")
    assert "KDC: not checked (no such user)" in result.stdout


def test_invalid_username(realm: sandbox.Realm, config: Path) -> None:
    result = doctor(realm, "../etc", config)

    assert_only_problem(result, "'../etc'")


@pytest.mark.parametrize("service", ["su", "su-l", "sudo", "runuser"])
def test_user_switching_service_is_refused(
    realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path, service: str
) -> None:
    give_ticket(realm, user)
    config = write_config(tmp_path, **{"PAMKerberosAuthenticator.service": service})

    result = doctor(realm, user.name, config)

    assert_only_problem(result, f"PAM service {service!r}", "without a password")
    assert "fix: set c.PAMKerberosAuthenticator.service" in result.stdout


def test_pam_rootok_reached_through_an_include_is_found(
    realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path, extra_pam_service: Path
) -> None:
    # A custom service that borrows su's auth stack, where pam_rootok is sufficient.
    extra_pam_service.write_text("auth include su\naccount required pam_unix.so\n")
    give_ticket(realm, user)
    config = write_config(tmp_path, **{"PAMKerberosAuthenticator.service": extra_pam_service.name})

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "pam_rootok", "/etc/pam.d/su:")


def test_stock_login_service_is_accepted(realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path) -> None:
    give_ticket(realm, user)
    config = write_config(tmp_path, **{"PAMKerberosAuthenticator.service": "login"})

    result = doctor(realm, user.name, config)

    assert result.returncode == 0, result.stdout
    assert "✓ PAM service 'login': /etc/pam.d/login" in result.stdout


def test_missing_pam_service(realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path) -> None:
    give_ticket(realm, user)
    config = write_config(tmp_path, **{"PAMKerberosAuthenticator.service": f"pamkrb-none-{secrets.token_hex(3)}"})

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "does not exist", "/etc/pam.d/other")


def test_missing_keytab(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)
    keytab_of(user).unlink()

    result = doctor(realm, user.name, config)

    assert_only_problem(result, f"keytab {keytab_of(user)}: does not exist")
    assert f"fix: export the key: kadmin -q 'ktadd -k {keytab_of(user)}" in result.stdout
    assert "KDC: not checked" in result.stdout


@pytest.mark.parametrize("source", ["password", "auto"])
def test_a_password_site_needs_no_keytab(
    realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path, pam_service: str, source: str
) -> None:
    """With credential_source "password" (or "auto" and no keytab) the hub
    never reads a keytab: doctor must not report a missing one."""
    give_ticket(realm, user)
    keytab_of(user).unlink()
    settings = {"PAMKerberosAuthenticator.service": pam_service, "PAMKerberosAuthenticator.credential_source": source}

    result = doctor(realm, user.name, write_config(tmp_path, **settings))

    assert result.returncode == 0, result.stdout + result.stderr
    assert problems(result) == []
    assert f"- keytab {keytab_of(user)}: not checked (" in result.stdout
    assert "tickets come from the login password" in result.stdout
    assert "does not exist" not in result.stdout
    assert "KDC: not checked" in result.stdout


def test_keytab_readable_by_others(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)
    keytab_of(user).chmod(0o644)

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "mode 0644", "group or others")
    assert f"fix: chmod 600 {keytab_of(user)}" in result.stdout


def test_keytab_owned_by_another_user(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)
    os.chown(keytab_of(user), NOBODY, NOBODY)

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "owned by nobody", f"not by {user.name}")
    assert f"fix: chown {user.name}: {keytab_of(user)}" in result.stdout


def test_keytab_symlink_is_refused(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)
    real = user.home / "real.keytab"
    keytab_of(user).rename(real)
    keytab_of(user).symlink_to(real)

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "symbolic link")


def test_principal_not_in_keytab(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)
    other = realm.add_principal(f"other{secrets.token_hex(3)}")
    realm.write_keytab(other, keytab_of(user), user.uid, user.gid)

    result = doctor(realm, user.name, config)

    assert_only_problem(result, f"has no key for {user.name}@{realm.name}", f"holds: {other}")
    assert "KDC: not checked" in result.stdout


def test_kdc_stopped(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)
    realm.stop()
    try:
        result = doctor(realm, user.name, config)
    finally:
        realm.start()

    assert_only_problem(result, "KDC", f"no ticket for {user.name}@{realm.name}")
    assert realm.krb5_conf.as_posix() in result.stdout  # the fix names the krb5.conf in use


def test_cache_missing(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    assert not os.path.lexists(user.default_ccache)

    result = doctor(realm, user.name, config)

    assert_only_problem(result, f"credential cache {user.default_ccache}: does not exist")


def test_cache_expired(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user, lifetime=1)
    sandbox.wait_until(
        lambda: _native.inspect_ticket(str(user.default_ccache), uid=user.uid).expires_at < time.time(),
        timeout=10,
        message="the one-second ticket to expire",
    )

    result = doctor(realm, user.name, config)

    assert_only_problem(result, f"credential cache {user.default_ccache}: expired at")


def test_cache_owned_by_root(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    # What `kinit` run as root leaves behind (it replaces the file with its own).
    give_ticket(realm, user, uid=0, gid=0)

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "owned by uid 0", "never trusts it")
    assert f"rm {user.default_ccache}" in result.stdout


def test_cache_readable_by_others(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    give_ticket(realm, user)
    user.default_ccache.chmod(0o644)

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "mode 0644")


def test_cache_of_another_principal(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> None:
    other = realm.add_principal(f"other{secrets.token_hex(3)}")
    keytab = user.home / "other.keytab"
    realm.write_keytab(other, keytab, user.uid, user.gid)
    _native.obtain_ticket(other, str(keytab), str(user.default_ccache), uid=user.uid, gid=user.gid)

    result = doctor(realm, user.name, config)

    assert_only_problem(result, f"for {other}, not {user.name}@{realm.name}")


def test_other_authenticator_is_reported(realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path) -> None:
    give_ticket(realm, user)
    config = write_config(tmp_path, **{"JupyterHub.authenticator_class": "pam"})

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "authenticator", "'pam', not pamkrb")


def test_invalid_template_is_reported(realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path) -> None:
    config = write_config(tmp_path, **{"PAMKerberosAuthenticator.keytab_template": "/home/{usr}/k"})

    result = doctor(realm, user.name, config)

    assert_only_problem(result, "configuration", "keytab_template")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["doctor", "root", "--config", "/nonexistent/jupyterhub_config.py"], "/nonexistent/jupyterhub_config.py"),
        (["doctor"], "USER"),
        (
            ["doctor", "root", "--hadoop-conf-dir", "/nonexistent/hadoop"],
            "--hadoop-conf-dir: /nonexistent/hadoop: no such",
        ),
    ],
)
def test_usage_errors(args: list[str], expected: str) -> None:
    result = sandbox.run_pamkrb(args)

    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_config_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "jupyterhub_config.py"
    config.write_text("c = get_config()  # noqa: F821\nc.JupyterHub.port = 1 / 0\n")

    result = sandbox.run_pamkrb(["doctor", "root", "--config", str(config)])

    assert result.returncode == 2
    assert "ZeroDivisionError" in result.stderr
    assert "Traceback" not in result.stderr


# -- FUSE mounts on the cache path ----------------------------------------------------

FUSE_CHECK = "FUSE mounts on the cache path"
FUSERMOUNT3 = Path("/usr/bin/fusermount3")


def require_setuid_fusermount() -> None:
    st = os.stat(FUSERMOUNT3) if FUSERMOUNT3.exists() else None
    if st is None or st.st_uid != 0 or not st.st_mode & stat.S_ISUID:
        pytest.fail(f"no setuid-root {FUSERMOUNT3}: run tools/setup.sh (it installs Debian's fuse3)")


def fuse_line(result: subprocess.CompletedProcess[str]) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line[2:].startswith(FUSE_CHECK)]
    return line


def test_cache_path_users_can_lock_with_fuse_is_warned_about(
    realm: sandbox.Realm, user: sandbox.UnixUser, config: Path
) -> None:
    """/tmp (1777), a setuid-root fusermount3 and /dev/fuse open to all: any
    user can mount a FUSE file system on /tmp/krb5cc_<uid> that root cannot
    enter. A warning, not a failure: the hub falls back to /run/pamkrb/."""
    require_setuid_fusermount()
    give_ticket(realm, user)

    with sandbox.fuse_device_mode(0o666):
        result = doctor(realm, user.name, config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert problems(result) == []
    warning = fuse_line(result)
    assert warning.startswith(f"! {FUSE_CHECK}: /tmp is writable by every user (mode 1777)"), warning
    assert f"{FUSERMOUNT3} is setuid root" in warning, warning
    assert "/dev/fuse is mode 0666" in warning
    assert f"FUSE file system on {user.default_ccache}" in warning
    assert f"fallback path /run/pamkrb/{user.uid}/krb5cc" in warning
    fix = result.stdout.splitlines()[result.stdout.splitlines().index(warning) + 1]
    assert fix.startswith("    fix: set c.PAMKerberosAuthenticator.ccache_template"), fix
    assert f"chmod u-s {FUSERMOUNT3}" in fix
    assert "chmod 0600 /dev/fuse" in fix


def test_no_fuse_warning_when_only_root_can_open_dev_fuse(
    realm: sandbox.Realm, user: sandbox.UnixUser, config: Path
) -> None:
    require_setuid_fusermount()
    give_ticket(realm, user)

    with sandbox.fuse_device_mode(0o600):
        result = doctor(realm, user.name, config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert fuse_line(result) == f"✓ {FUSE_CHECK}: /dev/fuse is mode 0600, not open to other users"


def test_no_fuse_warning_for_a_cache_directory_others_cannot_write(
    realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path, pam_service: str
) -> None:
    require_setuid_fusermount()
    settings = {
        "PAMKerberosAuthenticator.service": pam_service,
        "PAMKerberosAuthenticator.ccache_template": "{home}/krb5cc",
    }
    config = write_config(tmp_path, **settings)
    home_mode = stat.S_IMODE(os.stat(user.home).st_mode)

    with sandbox.fuse_device_mode(0o666):
        result = doctor(realm, user.name, config)

    line = fuse_line(result)
    assert line == f"✓ {FUSE_CHECK}: {user.home} (mode {home_mode:04o}) is not writable by other users", line
