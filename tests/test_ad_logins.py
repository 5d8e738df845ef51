"""Active Directory users log in through the real hub form on a joined member.

One hub for the module, started inside the member's mount namespace
(sandbox.samba.DomainMember.enter): its NSS is ``files winbind``, its PAM
service is pam_winbind's, its krb5.conf names the Samba AD DC. Passwords are
the ticket source (AD users have no keytabs); tickets are asked for with a
160-second lifetime (the DC's own minimum is an hour) and a renewable life of
15 minutes, and renewed with 140 s left: Samba's KDC refuses to renew a
ticket with 120 s or less left ("Ticket expired"), so the 30-60 s lifetimes
used against MIT cannot be renewed here at all.

- Every form the member accepts (``ADPAMKRB\\adalice``, ``ADPAMKRB\\ADALICE``,
  the UPN and the upper-case UPN) is one JupyterHub user,
  ``adalice@adpamkrb`` (winbind without a default domain: the bare name is
  not the account here), with one cache at /tmp/krb5cc_<4000000+RID>, owned
  by that uid, mode 0600, for ``adalice@AD.PAMKRB.TEST``; the server's ticket
  is renewed by TGS three times (the renewal window never moves: no new AS
  request).
- A must-change password is refused on the form with a message that says
  so, and no ticket is asked for; a locked account is told apart from a
  wrong password; a password about to expire is let in.
- N wrong passwords (through the form and the server's sign-in) with a
  lockout threshold of N+1 leave the account unlocked: pamkrb sends each
  wrong password to PAM once and never to the KDC.
- With winbind's default domain (a second member and hub), the bare name and
  the UPN are one JupyterHub user named ``adalice``.
"""

from __future__ import annotations

import html
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sandbox
from conftest import ARTIFACTS
from pamkrb import _native, login
from sandbox.samba import MEMBER_IDMAP_BASE, MEMBER_PAM_SERVICE, ADUser, DomainController, DomainMember

pytest_plugins = ["samba_fixtures"]

LIFETIME = 160
MARGIN = 140
INVALID = "Invalid username or password"


@dataclass(frozen=True)
class MemberRealm:
    """What sandbox.Hub needs of a realm: the environment of its clients.
    Inside the member's namespace /etc/krb5.conf is the member's."""

    def env(self) -> dict[str, str]:
        return {"KRB5_CONFIG": "/etc/krb5.conf"}


def start_hub(member: DomainMember, name: str) -> sandbox.Hub:
    artifacts = ARTIFACTS / "test_ad_logins"
    artifacts.mkdir(parents=True, exist_ok=True)
    hub = sandbox.Hub(
        MemberRealm(),
        config={
            "PAMKerberosAuthenticator.service": MEMBER_PAM_SERVICE,
            "PAMKerberosAuthenticator.credential_source": "password",
            "PAMKerberosAuthenticator.realm": member.dc.realm,
            "PAMKerberosAuthenticator.ticket_lifetime": LIFETIME,
            "PAMKerberosAuthenticator.renewable_lifetime": 900,
            "PAMKerberosAuthenticator.refresh_margin": MARGIN,
            "PAMKerberosAuthenticator.refresh_interval": 5,
        },
        command_prefix=member.enter(),
        log_path=artifacts / f"{name}.log",
    )
    hub.start(timeout=60)
    return hub


@pytest.fixture(scope="module")
def member_hub(ad_member: DomainMember) -> Iterator[sandbox.Hub]:
    hub = start_hub(ad_member, "jupyterhub")
    try:
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="module")
def adalice(ad_dc: DomainController, ad_member: DomainMember) -> Iterator[ADUser]:
    with ad_dc.users("adalice") as (user,):
        ad_member.make_home(f"{ad_dc.netbios_domain}\\{user.name}")
        yield user


def uid_of(dc: DomainController, name: str) -> int:
    return MEMBER_IDMAP_BASE + int(dc.user_attributes(name)["objectSid"].rsplit("-", 1)[1])


def hub_users(hub: sandbox.Hub) -> list[str]:
    with sqlite3.connect(f"file:{hub.dir / 'jupyterhub.sqlite'}?mode=ro", uri=True) as db:
        return sorted(row[0] for row in db.execute("SELECT name FROM users"))


def refused_with(response: Any, message: str) -> None:
    """The login form again (HTTP 403), saying ``message``."""
    assert response.status_code == 403, response.url
    assert "/hub/login" in response.url
    assert message in html.unescape(response.text), html.unescape(response.text)[-3000:]


def cache_ticket(uid: int) -> tuple[os.stat_result, _native.TicketInfo]:
    path = f"/tmp/krb5cc_{uid}"
    return os.lstat(path), _native.inspect_ticket(path, uid=uid)


def test_every_form_is_one_hub_user_whose_server_renews_by_tgs(
    ad_dc: DomainController, ad_member: DomainMember, member_hub: sandbox.Hub, adalice: ADUser
) -> None:
    domain = ad_dc.netbios_domain
    forms = [f"{domain}\\{adalice.name}", f"{domain}\\{adalice.name.upper()}", adalice.upn, adalice.upn.upper()]
    hub_name = f"{adalice.name}@{domain.lower()}"
    uid = uid_of(ad_dc, adalice.name)
    session = None
    for form in forms:
        response = member_hub.login(form, adalice.password)
        assert response.status_code == 200, (form, response.url, member_hub.log_tail())
        assert f"/user/{hub_name}/" in response.url or f"/hub/spawn-pending/{hub_name}" in response.url, response.url
        session = response.session
    assert hub_users(member_hub) == [hub_name]

    assert session is not None
    member_hub.wait_for_server(session, hub_name, timeout=90)
    info, first = cache_ticket(uid)
    assert (info.st_uid, stat.S_IMODE(info.st_mode), stat.S_ISREG(info.st_mode)) == (uid, 0o600, True)
    assert first.principal == f"{adalice.name}@{ad_dc.realm}"
    assert first.expires_at - first.starts_at <= LIFETIME
    assert first.renewable
    assert first.renew_until is not None

    # The server renews, each time by TGS: the renewal window stays the first
    # ticket's (an AS request would open a new one), and the cache never
    # holds an expired ticket meanwhile.
    seen = [first]

    def renewed_three_times() -> bool:
        _, now = cache_ticket(uid)
        assert now.expires_at > time.time()
        if now.expires_at != seen[-1].expires_at:
            assert now.principal == first.principal
            assert now.renew_until == first.renew_until, "a new AS ticket, not a renewal"
            assert now.expires_at - now.starts_at <= LIFETIME
            seen.append(now)
        return len(seen) >= 4

    sandbox.wait_until(renewed_three_times, timeout=4 * (LIFETIME - MARGIN) + 60, interval=1, message="three renewals")
    status = session.get(f"{member_hub.url}/user/{hub_name}/pamkrb/api/status", timeout=30).json()
    assert status["principal"] == first.principal


def test_a_must_change_password_is_refused_with_a_message_and_no_ticket(
    ad_dc: DomainController, ad_member: DomainMember, member_hub: sandbox.Hub
) -> None:
    with ad_dc.users("admustchange", must_change=True) as (user,):
        uid = uid_of(ad_dc, user.name)
        response = member_hub.login(f"{ad_dc.netbios_domain}\\{user.name}", user.password)
        refused_with(response, login.PASSWORD_MUST_CHANGE)
        assert not os.path.lexists(f"/tmp/krb5cc_{uid}")
        assert "admustchange" not in " ".join(hub_users(member_hub))
        # The user's mistake, not the hub's.
        assert "Traceback" not in member_hub.log_text().split("admustchange", 1)[-1]


def test_a_locked_account_is_told_apart_from_a_wrong_password(
    ad_dc: DomainController, ad_member: DomainMember, member_hub: sandbox.Hub
) -> None:
    with ad_dc.users("adlocked") as (user,):
        name = f"{ad_dc.netbios_domain}\\{user.name}"
        ad_dc.set_password_policy(lockout_threshold=2, lockout_minutes=10)
        try:
            for _ in range(2):
                refused_with(member_hub.login(name, user.password + "x"), INVALID)
            assert ad_dc.user_attributes(user.name).get("lockoutTime", "0") != "0"
            refused_with(member_hub.login(name, user.password), login.ACCOUNT_LOCKED)
        finally:
            ad_dc.set_password_policy(lockout_threshold=0)


def test_wrong_passwords_through_form_and_sign_in_count_once_each(
    ad_dc: DomainController, ad_member: DomainMember, member_hub: sandbox.Hub, adalice: ADUser
) -> None:
    """N = 3 wrong passwords (two on the form, one through the running
    server's sign-in) with a lockout threshold of 4: not locked, and the
    right password still gets in."""
    domain = ad_dc.netbios_domain
    hub_name = f"{adalice.name}@{domain.lower()}"
    session = member_hub.login(adalice.upn, adalice.password).session
    member_hub.wait_for_server(session, hub_name, timeout=90)
    ad_dc.set_password_policy(lockout_threshold=4, lockout_minutes=10)
    try:
        for form in (f"{domain}\\{adalice.name}", adalice.upn):
            refused_with(member_hub.login(form, adalice.password + "x"), INVALID)
        xsrf = session.cookies.get("_xsrf", path=f"/user/{hub_name}/") or ""
        signin = session.post(
            f"{member_hub.url}/user/{hub_name}/pamkrb/api/signin",
            json={"password": adalice.password + "x"},
            headers={"X-XSRFToken": xsrf},
            timeout=60,
        )
        assert signin.status_code == 403, signin.text
        attributes = ad_dc.user_attributes(adalice.name)
        assert attributes.get("badPwdCount") == "3"
        assert attributes.get("lockoutTime", "0") == "0"
        assert member_hub.login(adalice.upn, adalice.password).status_code == 200
        assert ad_dc.user_attributes(adalice.name).get("badPwdCount") == "0"
    finally:
        ad_dc.set_password_policy(lockout_threshold=0)


def test_a_password_about_to_expire_is_let_in(
    ad_dc: DomainController, ad_member: DomainMember, member_hub: sandbox.Hub
) -> None:
    # The domain's maximum password age of 2 days: a password set now
    # expires in 2 days, inside pam_winbind's 14-day warning.
    ad_dc.set_password_policy(max_password_age_days=2)
    try:
        with ad_dc.users("adexpiring") as (user,):
            ad_member.make_home(f"{ad_dc.netbios_domain}\\{user.name}")
            response = member_hub.login(user.upn, user.password)
            assert response.status_code == 200, member_hub.log_tail()
            assert f"{user.name}@{ad_dc.netbios_domain.lower()}" in hub_users(member_hub)
            _, ticket = cache_ticket(uid_of(ad_dc, user.name))
            assert ticket.principal == f"{user.name}@{ad_dc.realm}"
    finally:
        ad_dc.set_password_policy(max_password_age_days=42)


def test_with_a_default_domain_the_bare_name_and_the_upn_are_one_user(ad_dc: DomainController) -> None:
    member = DomainMember(ad_dc, default_domain=True)
    hub = None
    try:
        member.start()
        # The join's machine keys went to the member's keytab, not the host's.
        assert member.netbios_name.encode() in member.keytab.read_bytes()
        host_keytab = Path("/etc/krb5.keytab")
        assert not host_keytab.exists() or member.netbios_name.encode() not in host_keytab.read_bytes()
        with ad_dc.users("adbare") as (user,):
            member.make_home(user.name)
            hub = start_hub(member, "jupyterhub-default-domain")
            for form in (user.name, user.upn):
                response = hub.login(form, user.password)
                assert response.status_code == 200, (form, hub.log_tail())
            assert hub_users(hub) == [user.name]
            info, ticket = cache_ticket(uid_of(ad_dc, user.name))
            assert (info.st_uid, ticket.principal) == (uid_of(ad_dc, user.name), f"{user.name}@{ad_dc.realm}")
    finally:
        if hub is not None:
            hub.close()
        member.close()
