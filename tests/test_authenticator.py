"""PAMKerberosAuthenticator driven in-process against real PAM and a real KDC.

No hub here: each test builds an authenticator and awaits JupyterHub's outer
API, ``get_authenticated_user`` (authenticate, allow checks, post-auth hook), or
``authenticate`` itself, exactly as the hub's login handler would. KRB5_CONFIG
was set in this process by the ``realm`` fixture before libkrb5 loaded.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from typing import Any

import pytest
from tornado import web

import sandbox
from conftest import assert_no_cache, assert_user_cache
from pamkrb import PAMKerberosAuthenticator, login


def make_authenticator(service: str, **traits: Any) -> PAMKerberosAuthenticator:
    traits.setdefault("allow_all", True)
    return PAMKerberosAuthenticator(service=service, **traits)


def log_in(auth: PAMKerberosAuthenticator, username: str, password: str) -> Any:
    """What the hub's login handler calls; None means "login failed"."""
    data = {"username": username, "password": password}
    return asyncio.run(auth.get_authenticated_user(None, data))


def assert_refused(auth: PAMKerberosAuthenticator, user: sandbox.UnixUser) -> None:
    """The login fails as the user sees it: None, or an HTTP error below 500."""
    result: Any = None
    error: web.HTTPError | None = None
    try:
        result = log_in(auth, user.name, user.password)
    except web.HTTPError as e:
        error = e
    if error is not None:
        assert error.status_code < 500, f"refusal must not be a server error: {error}"
    else:
        assert result is None, f"login unexpectedly succeeded: {result!r}"


def test_right_password_returns_user_and_installs_cache(
    realm: sandbox.Realm, pam_service: str, user: sandbox.UnixUser
) -> None:
    auth = make_authenticator(pam_service)
    result = log_in(auth, user.name, user.password)
    assert result is not None
    assert result["name"] == user.name
    assert_user_cache(realm, user)


def test_authenticate_returns_name_for_right_password(pam_service: str, user: sandbox.UnixUser) -> None:
    auth = make_authenticator(pam_service)
    data = {"username": user.name, "password": user.password}
    result = asyncio.run(auth.authenticate(None, data))
    name = result["name"] if isinstance(result, dict) else result
    assert name == user.name


def test_wrong_password_returns_none_and_writes_no_cache(pam_service: str, user: sandbox.UnixUser) -> None:
    auth = make_authenticator(pam_service)
    assert log_in(auth, user.name, "wrong-" + user.password) is None
    data = {"username": user.name, "password": "wrong-" + user.password}
    assert asyncio.run(auth.authenticate(None, data)) is None
    assert_no_cache(user)


def test_unknown_user_returns_none(realm: sandbox.Realm, pam_service: str) -> None:
    auth = make_authenticator(pam_service)
    name = "pktnone" + secrets.token_hex(3)
    assert log_in(auth, name, "whatever-password") is None


def test_expired_account_refused_by_check_account(pam_service: str, user: sandbox.UnixUser) -> None:
    # Expired on 1970-01-02: pam_unix's password check passes, its account
    # check does not (PAM_ACCT_EXPIRED), and the login form says so.
    subprocess.run(["usermod", "--expiredate", "1", user.name], check=True)
    auth = make_authenticator(pam_service, check_account=True)
    with pytest.raises(web.HTTPError) as refused:
        log_in(auth, user.name, user.password)
    assert refused.value.status_code == 403
    assert refused.value.log_message % refused.value.args == login.ACCOUNT_EXPIRED
    assert_no_cache(user)


def test_check_account_false_skips_account_check(
    realm: sandbox.Realm, pam_service: str, user: sandbox.UnixUser
) -> None:
    subprocess.run(["usermod", "--expiredate", "1", user.name], check=True)
    auth = make_authenticator(pam_service, check_account=False)
    result = log_in(auth, user.name, user.password)
    assert result is not None
    assert result["name"] == user.name
    assert_user_cache(realm, user)


def test_root_owned_cache_is_replaced_by_a_user_owned_one(
    realm: sandbox.Realm, pam_service: str, user: sandbox.UnixUser
) -> None:
    # What the old patch left behind: MIT kinit run as root writes a root-owned
    # cache, after which the user's own renewals fail.
    keytab = user.home / f"{user.name}.keytab"
    realm.kinit(user.name, keytab, f"FILE:{user.default_ccache}")
    assert os.lstat(user.default_ccache).st_uid == 0
    auth = make_authenticator(pam_service)
    assert log_in(auth, user.name, user.password) is not None
    assert_user_cache(realm, user)


def test_missing_keytab_refuses_login(pam_service: str, user: sandbox.UnixUser) -> None:
    (user.home / f"{user.name}.keytab").unlink()
    auth = make_authenticator(pam_service)
    assert_refused(auth, user)
    assert_no_cache(user)


def test_missing_keytab_allowed_when_kinit_not_required(pam_service: str, user: sandbox.UnixUser) -> None:
    (user.home / f"{user.name}.keytab").unlink()
    auth = make_authenticator(pam_service, kinit_required=False)
    result = log_in(auth, user.name, user.password)
    assert result is not None
    assert result["name"] == user.name
    assert_no_cache(user)


def test_kdc_down_refuses_login(realm: sandbox.Realm, pam_service: str, user: sandbox.UnixUser) -> None:
    auth = make_authenticator(pam_service)
    realm.stop()
    try:
        assert_refused(auth, user)
    finally:
        realm.start()
    assert_no_cache(user)
    # The same authenticator recovers once the KDC is back.
    assert log_in(auth, user.name, user.password) is not None
    assert_user_cache(realm, user)


def test_custom_principal_and_keytab_templates(realm: sandbox.Realm, pam_service: str, user: sandbox.UnixUser) -> None:
    principal = realm.add_principal(f"{user.name}/pg-dmp-workbench2")
    keytab = user.home / f"{user.name}.wb1.keytab"
    realm.write_keytab(principal, keytab, user.uid, user.gid)
    auth = make_authenticator(
        pam_service,
        principal_template="{username}/pg-dmp-workbench2@{realm}",
        keytab_template="/home/{username}/{username}.wb1.keytab",
    )
    assert log_in(auth, user.name, user.password) is not None
    assert_user_cache(realm, user, principal)


def test_realm_defaults_to_krb5_conf(realm: sandbox.Realm, pam_service: str) -> None:
    assert make_authenticator(pam_service).realm == realm.name
