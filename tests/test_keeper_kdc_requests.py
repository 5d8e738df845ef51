"""What an idle keytab user's server costs the KDC, with the broker off.

The server keeps its ticket with the same strategy as the hub (pamkrb.keeper):
a TGS renewal while the ticket is renewable, a new ticket from the keytab (an
AS request) only when its renewable life runs out. Tickets here live 30 s and
are renewable for 90 s, so both happen within a few minutes.

``PAMKRB_KDC_LIFETIMES`` sets how many ticket lifetimes the server is watched
(default 4; the issue's figure was taken with 10).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator

import pytest

import sandbox
from conftest import require_root

LIFETIME = 30
RENEWABLE_LIFE = 90
MARGIN = 10
LIFETIMES = int(os.environ.get("PAMKRB_KDC_LIFETIMES", "4"))


@pytest.fixture(scope="module")
def renewing_realm() -> Iterator[sandbox.Realm]:
    require_root()
    realm = sandbox.Realm("RENEW.TEST", max_life=LIFETIME, max_renewable_life=RENEWABLE_LIFE)
    try:
        realm.start()
        yield realm
    finally:
        realm.stop()
        realm.close()


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
