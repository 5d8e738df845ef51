"""Configuration mistakes are caught at hub start-up or named in the log:
a PAM service that lets root in without a password, a broken template, a
keytab others can read, a KDC that never answers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
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
        ("ccache_template", "/tmp/krb5cc_{usr}", "unknown placeholder"),
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
    # The abandoned kinit is still waiting inside libkrb5; make it fail now
    # and wait for its thread to end.
    silent_kdc.close()
    sandbox.wait_until(lambda: not auth.tickets.attempt_running(user.name), timeout=40, message="the abandoned kinit")
    assert not os.path.lexists(user.default_ccache)


@pytest.fixture
def paused_kdc(realm):
    """Stops the realm's krb5kdc (SIGSTOP) until the test calls the returned
    resume(): the kernel still queues connections, so a request sent meanwhile
    is answered on resume, after its caller gave up."""
    pid = int(realm.pidfile.read_text())
    os.kill(pid, signal.SIGSTOP)
    stopped = True

    def resume():
        nonlocal stopped
        if stopped:
            os.kill(pid, signal.SIGCONT)
            stopped = False

    try:
        yield resume
    finally:
        resume()


def test_a_login_that_timed_out_installs_nothing_when_the_kdc_answers_later(pam_service, user, realm, paused_kdc):
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, kdc_timeout=2)
    before = realm.kdc_requests("AS_REQ")
    with pytest.raises(web.HTTPError) as info:
        log_in(auth, user)
    assert info.value.status_code == 403

    paused_kdc()
    # The KDC answers the queued request; the attempt ends after its deadline.
    sandbox.wait_until(lambda: realm.kdc_requests("AS_REQ") > before, timeout=20, message="the queued AS_REQ")
    sandbox.wait_until(lambda: not auth.tickets.attempt_running(user.name), timeout=40, message="the late kinit")
    assert not os.path.lexists(user.default_ccache)
    assert sandbox.pamkrb_temp_files("/tmp", uids={user.uid}) == []


def test_logins_against_a_silent_kdc_share_one_kerberos_attempt(pam_service, user, realm, paused_kdc):
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True, kdc_timeout=2)
    before = realm.kdc_requests("AS_REQ")

    async def five_logins():
        data = {"username": user.name, "password": user.password}
        results = await asyncio.gather(
            *(auth.get_authenticated_user(None, data) for _ in range(5)), return_exceptions=True
        )
        # A sixth, after the others gave up, joins the attempt still running.
        results.append(await asyncio.gather(auth.get_authenticated_user(None, data), return_exceptions=True))
        return results

    results = asyncio.run(five_logins())
    flat = results[:5] + results[5]
    assert all(isinstance(r, web.HTTPError) and r.status_code == 403 for r in flat), flat

    paused_kdc()
    sandbox.wait_until(lambda: not auth.tickets.attempt_running(user.name), timeout=40, message="the shared kinit")
    # One kinit: the requests one login costs, not six times that.
    per_login = realm.kdc_requests("AS_REQ") - before
    assert per_login >= 1
    assert log_in(auth, user) is not None
    one_more = realm.kdc_requests("AS_REQ") - before - per_login
    assert per_login == one_more, f"six logins made {per_login} AS_REQs, one makes {one_more}"
