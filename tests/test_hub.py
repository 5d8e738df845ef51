"""pamkrb through the whole stack: JupyterHub 6, configurable-http-proxy,
LocalProcessSpawner and Notebook 7, with a real KDC and real PAM.

Logins go through the HTTP login form. Most tests share one hub (module
scope) and each gets a fresh Unix user; tests that need other configuration
start their own hub.
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

import sandbox
from conftest import assert_no_cache, assert_user_cache

REFUSAL_PAGE_STATUSES = (200, 403)


def assert_not_logged_in(response: Any) -> None:
    """A refused login stays on the login form: no redirect, no server error."""
    assert response.status_code in REFUSAL_PAGE_STATUSES, response.status_code
    assert urllib.parse.urlparse(response.url).path == "/hub/login"


def the_server_environment(user: sandbox.UnixUser) -> dict[str, str]:
    pids = sandbox.singleuser_pids(user.uid)
    assert len(pids) == 1, f"expected one jupyterhub-singleuser of {user.name}: {pids}"
    return sandbox.process_environ(pids[0])


def test_login_installs_cache_and_sets_krb5ccname(
    hub: sandbox.Hub, realm: sandbox.Realm, user: sandbox.UnixUser
) -> None:
    sandbox.login_and_spawn(hub, user)

    assert_user_cache(realm, user)
    env = the_server_environment(user)
    assert env.get("KRB5CCNAME") == f"FILE:{user.default_ccache}"
    assert env.get("KRB5_CONFIG") == str(realm.krb5_conf)
    assert user.password not in hub.log_text()

    # The user's own tools accept the cache, and the user can renew it: a
    # root-owned or wrongly-moded cache fails here ("permissions incorrect").
    user_env = {**realm.client_env(), "KRB5CCNAME": env["KRB5CCNAME"]}
    assert user.run(["klist", "-s"], env=user_env).returncode == 0
    keytab = user.home / f"{user.name}.keytab"
    principal = f"{user.name}@{realm.name}"
    renewal = user.run(["kinit", "-k", "-t", str(keytab), principal], env=user_env)
    assert renewal.returncode == 0, renewal.stderr
    assert_user_cache(realm, user)


def test_wrong_password_shows_login_error_and_writes_no_cache(hub: sandbox.Hub, user: sandbox.UnixUser) -> None:
    wrong = "wrong-" + user.password
    response = hub.login(user.name, wrong)

    assert_not_logged_in(response)
    assert "Invalid username or password" in response.text
    assert_no_cache(user)
    assert sandbox.singleuser_pids(user.uid) == []
    assert wrong not in hub.log_text()


def test_missing_keytab_refuses_login_with_a_kerberos_message(hub: sandbox.Hub, user: sandbox.UnixUser) -> None:
    keytab = user.home / f"{user.name}.keytab"
    keytab.unlink()
    response = hub.login(user.name, user.password)

    assert response.status_code != 500
    assert_not_logged_in(response)
    assert "Kerberos" in response.text
    assert_no_cache(user)
    assert sandbox.singleuser_pids(user.uid) == []
    # The admin learns exactly why from the hub log.
    assert str(keytab) in hub.log_text()


@pytest.mark.parametrize("planted_by", ["user", "root"])
def test_symlink_at_cache_path_is_not_followed(
    hub: sandbox.Hub,
    realm: sandbox.Realm,
    user: sandbox.UnixUser,
    tmp_path: Path,
    planted_by: str,
) -> None:
    """The original patch chown'ed /tmp/krb5cc_<uid> by path as root, so a user
    could point it at any file. A link planted by the user is what an attacker
    does; a root-owned one gets past the kernel's fs.protected_symlinks, so
    only pamkrb's own O_NOFOLLOW handling keeps the target safe."""
    tmp_path.chmod(0o755)
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's file, not a credential cache\n")
    victim.chmod(0o644)
    before = os.stat(victim)
    link = user.default_ccache
    if planted_by == "user":
        planted = user.run(["ln", "-s", str(victim), str(link)])
        assert planted.returncode == 0, planted.stderr
    else:
        os.symlink(victim, link)

    response = hub.login(user.name, user.password)
    # The plant neither stops the login nor is written through: it is replaced.
    assert urllib.parse.urlparse(response.url).path != "/hub/login", response.text
    hub.wait_for_server(response.session, user.name)

    after = os.stat(victim)
    assert victim.read_bytes() == b"root's file, not a credential cache\n"
    assert (after.st_uid, after.st_gid) == (0, 0)
    assert stat.S_IMODE(after.st_mode) == 0o644
    # chown/chmod to the same values would still move ctime.
    assert after.st_ctime_ns == before.st_ctime_ns
    assert after.st_mtime_ns == before.st_mtime_ns
    assert_user_cache(realm, user)


def test_original_setup_principal_and_keytab(hub_factory: Any, realm: sandbox.Realm, user: sandbox.UnixUser) -> None:
    """The configuration pamkrb replaces: per-host principals and .wb1 keytabs."""
    principal = realm.add_principal(f"{user.name}/pg-dmp-workbench2")
    realm.write_keytab(principal, user.home / f"{user.name}.wb1.keytab", user.uid, user.gid)
    # Only the .wb1 keytab remains, so a login can only succeed through it.
    (user.home / f"{user.name}.keytab").unlink()
    hub = hub_factory(
        {
            "PAMKerberosAuthenticator.principal_template": ("{username}/pg-dmp-workbench2@{realm}"),
            "PAMKerberosAuthenticator.keytab_template": ("/home/{username}/{username}.wb1.keytab"),
        }
    )
    sandbox.login_and_spawn(hub, user)

    assert_user_cache(realm, user, principal)
    env = the_server_environment(user)
    assert env.get("KRB5CCNAME") == f"FILE:{user.default_ccache}"


def test_stock_login_pam_service(hub_factory: Any, realm: sandbox.Realm, user: sandbox.UnixUser) -> None:
    """Debian's own /etc/pam.d/login stack, not just the test service."""
    hub = hub_factory(service="login")
    sandbox.login_and_spawn(hub, user)

    assert_user_cache(realm, user)
