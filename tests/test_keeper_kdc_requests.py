"""What an idle keytab user's server costs the KDC, with the broker off.

The server keeps its ticket with the same strategy as the hub (pamkrb.keeper):
a TGS renewal while the ticket is renewable, a new ticket from the keytab (an
AS request) only when its renewable life runs out. Tickets here live 30 s and
are renewable for 90 s, so both happen within a few minutes.

``PAMKRB_KDC_LIFETIMES`` sets how many ticket lifetimes the server is watched
(default 4; the issue's figure was taken with 10).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator

import pytest

import sandbox
from conftest import private_realm

LIFETIME = 30
RENEWABLE_LIFE = 90
MARGIN = 10
LIFETIMES = int(os.environ.get("PAMKRB_KDC_LIFETIMES", "4"))


@pytest.fixture(scope="module")
def renewing_realm() -> Iterator[sandbox.Realm]:
    with private_realm("RENEW.TEST", max_life=LIFETIME, max_renewable_life=RENEWABLE_LIFE) as realm:
        yield realm


@pytest.fixture
def renewing_user(renewing_realm: sandbox.Realm) -> Iterator[sandbox.UnixUser]:
    with sandbox.provisioned_user(renewing_realm) as user:
        yield user


@pytest.mark.timeout(LIFETIMES * LIFETIME + 240)
def test_an_idle_servers_ticket_is_renewed_by_tgs_until_its_renewable_life_ends(
    hub_factory, renewing_realm, renewing_user
):
    realm, user = renewing_realm, renewing_user
    hub = hub_factory(
        {
            "PAMKerberosAuthenticator.refresh_margin": MARGIN,
            "PAMKerberosAuthenticator.refresh_interval": MARGIN,
            "PAMKerberosAuthenticator.renewable_lifetime": RENEWABLE_LIFE,
        },
        realm=realm,
    )
    sandbox.login_and_spawn(hub, user)
    as_before, tgs_before = realm.kdc_requests("AS_REQ"), realm.kdc_requests("TGS_REQ")
    watched = LIFETIMES * LIFETIME

    time.sleep(watched)

    as_requests = realm.kdc_requests("AS_REQ") - as_before
    tgs_requests = realm.kdc_requests("TGS_REQ") - tgs_before
    print(f"over {LIFETIMES} lifetimes of {LIFETIME} s: AS_REQ {as_requests}, TGS_REQ {tgs_requests}")
    assert realm.klist_valid(user.default_ccache)
    # Renewed every LIFETIME - MARGIN seconds or so; a new ticket from the
    # keytab only once per renewable life (and never more than one in three).
    assert tgs_requests >= watched // LIFETIME
    assert as_requests <= math.ceil(watched / RENEWABLE_LIFE) + 1
    assert as_requests * 2 <= tgs_requests


@pytest.mark.timeout(RENEWABLE_LIFE + 120)
def test_a_password_ticket_at_its_renew_till_is_kept_without_asking_the_kdc_again(
    renewing_realm, tmp_path, monkeypatch
):
    """The KDC caps a renewal at renew-till: once a password ticket ends
    there, renewing it again would return the same ticket. The keeper keeps
    it (valid, no KDC request) until it expires, then asks for a sign-in."""
    from pamkrb import _native, lifecycle
    from pamkrb.exceptions import LoginRequired
    from pamkrb.keeper import KeepingRules, Target, TicketKeeper

    realm = renewing_realm
    monkeypatch.setenv("KRB5_CONFIG", str(realm.krb5_conf))
    principal = realm.add_password_principal("kdc-cap", "cap-Secret-1")
    ccache = str(tmp_path / "krb5cc")
    renew_life = LIFETIME + LIFETIME // 2  # one renewal reaches the cap
    first = _native.obtain_ticket_with_password(
        principal, bytearray(b"cap-Secret-1"), ccache, lifetime=LIFETIME, renew_lifetime=renew_life
    ).ticket
    assert first.renew_until is not None
    assert first.renew_until > first.expires_at
    target = Target(username="kdc-cap", principal=principal, ccache=ccache, source=lifecycle.SOURCE_PASSWORD)
    keeper = TicketKeeper(
        "kdc-cap",
        lambda: target,
        KeepingRules(refresh_margin=MARGIN, kdc_timeout=10),
        flight=lifecycle.SingleFlight(),
    )
    tgs_before = realm.kdc_requests("TGS_REQ", client=principal)
    checks, expiries = 0, set()

    async def check_until_sign_in_is_needed() -> LoginRequired:
        nonlocal checks
        deadline = time.monotonic() + renew_life + 60
        while time.monotonic() < deadline:
            checks += 1
            try:
                kept = await keeper.refresh("timer")
            except LoginRequired as e:
                return e
            expiries.add(kept.info.expires_at)
            await asyncio.sleep(0.5)  # a server checks every few seconds near the end
        raise AssertionError("the keeper never asked for a sign-in")

    refused = asyncio.run(check_until_sign_in_is_needed())
    tgs = realm.kdc_requests("TGS_REQ", client=principal) - tgs_before
    print(f"{checks} checks, {tgs} TGS requests, expiries seen {sorted(expiries)}")
    assert time.time() >= first.renew_until  # kept to the end, not refused early
    assert max(expiries) == first.renew_until  # renewed up to the cap
    # One renewal reached the cap; the checks after it cost the KDC nothing
    # (before the fix: one TGS request per check for the last MARGIN seconds).
    assert 1 <= tgs <= 2, tgs
    assert checks > 2 * MARGIN
    assert "sign in" in str(refused)
