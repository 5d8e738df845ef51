"""Configuration mistakes are caught at hub start-up or named in the log:
a PAM service that lets root in without a password, a broken template, a
keytab others can read, a KDC that never answers."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest
from tornado import web
from traitlets import TraitError

import sandbox
from conftest import require_root
from pamkrb import PAMKerberosAuthenticator


@pytest.mark.parametrize("service", ["su", "su-l", "runuser", "sudo"])
def test_user_switching_services_are_refused_at_start(service):
    with pytest.raises(TraitError, match="without a password"):
        PAMKerberosAuthenticator(service=service, allow_all=True)


def test_service_including_pam_rootok_is_refused(pam_service):
    require_root()
    path = Path("/etc/pam.d/pamkrb-test-rootok")
    path.write_text("auth include su\naccount required pam_unix.so\n")
    try:
        with pytest.raises(TraitError, match="pam_rootok"):
            PAMKerberosAuthenticator(service=path.name, allow_all=True)
    finally:
        path.unlink()


def test_stock_login_and_test_services_are_accepted(pam_service):
    PAMKerberosAuthenticator(service="login", allow_all=True)
    PAMKerberosAuthenticator(service=pam_service, allow_all=True)


@pytest.mark.parametrize(
    ("trait", "value", "message"),
    [
        ("ccache_template", "/tmp/krb5cc_{user}", "unknown placeholder"),
        ("keytab_template", "/home/{username/x.keytab", "unbalanced"),
        ("principal_template", "{username}@{REALM}", "unknown placeholder"),
    ],
)
def test_invalid_templates_fail_at_start(trait, value, message):
    with pytest.raises(TraitError, match=message):
        PAMKerberosAuthenticator(**{trait: value}, realm="X.TEST", allow_all=True)


def log_in(auth, user):
    data = {"username": user.name, "password": user.password}
    return asyncio.run(auth.get_authenticated_user(None, data))


def test_keytab_readable_by_others_is_named_in_a_warning(pam_service, user, caplog):
    keytab = user.home / f"{user.name}.keytab"
    keytab.chmod(0o644)
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    with caplog.at_level(logging.WARNING):
        assert log_in(auth, user) is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(keytab) in w and "644" in w for w in warnings), warnings


@pytest.fixture
def silent_kdc(realm):
    realm.stop()
    kdc = sandbox.SilentKDC(realm.port)
    try:
        yield kdc
    finally:
        kdc.close()
        realm.start()


def test_hung_kdc_gives_up_after_kdc_timeout(pam_service, user, silent_kdc, caplog):
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, kdc_timeout=2)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR), pytest.raises(web.HTTPError) as info:
        log_in(auth, user)
    elapsed = time.monotonic() - started
    assert info.value.status_code == 403
    assert elapsed < 10, f"gave up after {elapsed:.1f} s, libkrb5 alone takes ~27 s"
    assert silent_kdc.held, "the login never reached the silent KDC"
    assert any("kdc_timeout" in r.getMessage() for r in caplog.records)
    # The abandoned kinit is still waiting inside libkrb5; make it fail now,
    # before the real KDC comes back, so it cannot write a cache later.
    silent_kdc.close()
    auth.kerberos_executor.shutdown(wait=True)
    assert not os.path.lexists(user.default_ccache)
