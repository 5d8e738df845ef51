"""Faults on the Kerberos side: a KDC that accepts and never answers (under a
storm of logins, while the hub's health is measured), a KDC whose clock is
an hour ahead, and a keytab whose key version the KDC no longer has.

A stopped KDC is covered by test_authenticator.py and test_serverextension.py,
a single hung login by test_misconfiguration.py.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
from tornado import web

import sandbox
from conftest import require_root
from pamkrb import PAMKerberosAuthenticator

STORM_LOGINS = 20
KDC_TIMEOUT = 3
# The target for /hub/health during the storm is 50 ms; the assertion
# leaves room for a loaded 2-core CI machine and the report gives the number.
HEALTH_P99_LIMIT = 0.5


@pytest.fixture(scope="module")
def storm_users(realm: sandbox.Realm) -> Iterator[list[sandbox.UnixUser]]:
    with sandbox.provisioned_users(realm, STORM_LOGINS, "pks") as users:
        yield users


@pytest.fixture
def kdc_restored(realm: sandbox.Realm) -> Iterator[sandbox.Realm]:
    """The session's KDC, running again after the test whatever happened."""
    yield realm
    if not realm.running:
        realm.start()


def test_login_storm_against_a_silent_kdc_keeps_the_hub_healthy(
    hub_factory, kdc_restored, storm_users, record_property
):
    realm = kdc_restored
    hub = hub_factory(
        {
            "PAMKerberosAuthenticator.kdc_timeout": KDC_TIMEOUT,
            "JupyterHub.authenticate_prometheus": False,
        }
    )
    failures = {"result": "failure", "trigger": "login"}
    failed_before = sandbox.hub_metric(hub, "pamkrb_ticket_acquisitions_total", failures)
    realm.stop()
    silent = sandbox.SilentKDC(realm.port)
    outcomes: dict[str, tuple[int, float]] = {}
    try:

        def log_in(user: sandbox.UnixUser) -> None:
            started = time.monotonic()
            response = hub.login(user.name, user.password)
            outcomes[user.name] = (response.status_code, time.monotonic() - started)

        threads = [threading.Thread(target=log_in, args=(user,)) for user in storm_users]
        with sandbox.LatencyProbe(f"{hub.url}/hub/health", interval=0.05) as probe:
            storm_started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=KDC_TIMEOUT + 60)
            storm_seconds = time.monotonic() - storm_started
        assert len(outcomes) == STORM_LOGINS, "some logins never returned"
        assert silent.held, "the logins never reached the silent KDC"
    finally:
        # Waiting kinits now fail at once instead of after libkrb5's ~30 s.
        silent.close()

    p50, p99 = probe.percentile(0.5), probe.percentile(0.99)
    latencies = [seconds for seconds, _ in probe.samples]
    slowest_login = max(seconds for _, seconds in outcomes.values())
    report = (
        f"{STORM_LOGINS} logins in {storm_seconds:.1f} s (slowest {slowest_login:.1f} s); "
        f"/hub/health: {len(probe.samples)} requests, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms"
    )
    report += f"; {len(silent.held)} kinits reached the silent KDC"
    print(report)
    record_property("storm", report)
    assert {status for status, _ in outcomes.values()} == {403}, outcomes
    assert slowest_login < KDC_TIMEOUT + 5, report
    assert all(status == 200 for _, status in probe.samples), report
    assert p99 < HEALTH_P99_LIMIT, report
    assert hub.log_text().count("(kdc_timeout)") >= STORM_LOGINS

    # Kinits still waiting when their login gave up finish in the background;
    # queued ones are cancelled. Wait until each that reached the silent KDC
    # (one connection each) has failed, before the real KDC is back, so none
    # can write a cache for a refused login later.
    started = len(silent.held)
    assert 0 < started <= STORM_LOGINS
    sandbox.wait_until(
        lambda: sandbox.hub_metric(hub, "pamkrb_ticket_acquisitions_total", failures) >= failed_before + started,
        timeout=60,
        interval=0.2,
        message=f"the {started} abandoned kinits to fail",
    )
    realm.start()
    first, *others = storm_users
    response = hub.login(first.name, first.password)
    assert response.status_code == 200, hub.log_tail()
    assert realm.klist_valid(first.default_ccache)
    for user in others:
        assert not user.default_ccache.exists(), f"a refused login of {user.name} left a cache"


# -- clock skew ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def skewed_realm() -> Iterator[sandbox.SkewedRealm]:
    require_root()
    if sandbox.faketime_library() is None:
        pytest.skip(
            "needs libfaketime (apt-get install faketime) to run a KDC with its clock an hour ahead; "
            "there is no other way to skew one process's clock without changing the machine's"
        )
    realm = sandbox.SkewedRealm("SKEW.TEST", "+1h")
    try:
        realm.start()
        yield realm
    finally:
        realm.close()


@pytest.fixture
def skewed_user(skewed_realm: sandbox.SkewedRealm) -> Iterator[sandbox.UnixUser]:
    with sandbox.provisioned_user(skewed_realm, "pkk") as user:
        yield user


def log_in(auth: PAMKerberosAuthenticator, user: sandbox.UnixUser):
    return asyncio.run(auth.get_authenticated_user(None, {"username": user.name, "password": user.password}))


def test_skewed_kdc_clock_is_compensated_by_default(pam_service, skewed_realm, skewed_user, monkeypatch):
    """MIT's default kdc_timesync = 1 adopts the KDC's clock for the ticket
    (an offset kept with the credentials), so the login works."""
    monkeypatch.setenv("KRB5_CONFIG", str(skewed_realm.krb5_conf))
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    assert auth.realm == skewed_realm.name
    assert log_in(auth, skewed_user) is not None
    assert skewed_realm.klist_valid(skewed_user.default_ccache)


def test_skewed_kdc_clock_without_timesync_is_refused_naming_clock_skew(
    pam_service, skewed_realm, skewed_user, monkeypatch, caplog
):
    skewed_realm.set_client_option("kdc_timesync = 0")
    monkeypatch.setenv("KRB5_CONFIG", str(skewed_realm.krb5_conf))
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    with caplog.at_level(logging.ERROR), pytest.raises(web.HTTPError) as info:
        log_in(auth, skewed_user)
    assert info.value.status_code == 403
    errors = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "Clock skew too great" in errors, errors
    assert not skewed_user.default_ccache.exists()


# -- key version ------------------------------------------------------------------------


def test_keytab_with_an_old_key_version_is_refused_naming_the_problem(pam_service, realm, user, caplog):
    principal = f"{user.name}@{realm.name}"
    realm.kadmin(f"cpw -randkey {principal}")  # the keytab now holds kvno 1, the KDC kvno 2
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    with caplog.at_level(logging.ERROR), pytest.raises(web.HTTPError) as info:
        log_in(auth, user)
    assert info.value.status_code == 403
    errors = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert principal in errors, errors
    assert str(user.home / f"{user.name}.keytab") in errors, errors
    # What libkrb5 says when the reply is encrypted in a key the keytab lacks.
    assert "Decrypt integrity check failed" in errors, errors
    assert not user.default_ccache.exists()


def test_old_key_version_message_says_the_keytab_is_stale(pam_service, realm, user, caplog):
    realm.kadmin(f"cpw -randkey {user.name}@{realm.name}")
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    with caplog.at_level(logging.ERROR), pytest.raises(web.HTTPError):
        log_in(auth, user)
    errors = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR).lower()
    assert "key version" in errors or "kvno" in errors, errors
