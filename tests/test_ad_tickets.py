"""The ticket side of Active Directory: what pamkrb's native kinit and its
keeper do against Samba 4.17's AD DC (Heimdal KDC inside), started once per
session (tests/samba_fixtures.py).

- Canonical names: every AS request asks for canonicalization, so the cache
  holds the KDC's name (``aduser@REALM``) for ``ADUSER@REALM`` and, with
  ``enterprise=True``, for the UPN ``aduser@ad.pamkrb.test``.
- The keeper takes that name for the user's from then on: checks of a fresh
  ticket cost no KDC request and a renewal is one TGS request, counted at the
  DC (its TCP passive opens), never an AS request per check.
- Account policy: an expired or must-change password is ``PasswordExpired``,
  a locked or disabled account ``AccountRevoked`` (both KerberosError), each
  with the words the login form and the sign-in dialog show.
- An expiring password: the ticket is issued, the KDC's expiry comes back as
  ``Installation.password_expires_at`` and reaches the server's status.
- FAST: with an armor keytab (a computer account's, as ``net ads join``
  makes) the request is armored, libkrb5's trace shows it, and a stale armor
  key fails with a message naming the armor keytab.
- Keytabs exported from AD: the RC4 key alone gets a ticket, and ``pamkrb
  doctor`` reports the enctypes against the host's ``permitted_enctypes``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from tornado import web
from traitlets import TraitError

from pamkrb import PAMKerberosAuthenticator, _native, kdc_refusals, lifecycle, ticket_api
from pamkrb.cli.doctor import Report, check_keytab_enctypes
from pamkrb.exceptions import (
    AccountRevoked,
    KerberosError,
    KerberosPasswordRejected,
    KeytabError,
    PasswordExpired,
)
from pamkrb.keeper import KeepingRules, Target, TicketKeeper
from pamkrb.refresher import TicketRefresher
from sandbox.samba import ADUser, DomainController

# The session's domain controller: ad_dc, ad_krb5_config.
pytest_plugins = ["samba_fixtures"]

KDC_ERR_CLIENT_REVOKED = -1765328366
KDC_ERR_KEY_EXPIRED = -1765328361
KDC_ERR_POLICY = -1765328372
RC4 = 23
SCHEMA = Path(lifecycle.__file__).with_name("status.schema.json")


@pytest.fixture
def ad_user(ad_dc: DomainController) -> Iterator[ADUser]:
    """A fresh account for one test, deleted afterwards."""
    with ad_dc.users("ad" + secrets.token_hex(5)) as (user,):
        yield user


def kdc_connections(dc: DomainController) -> int:
    """TCP connections the DC has accepted so far (``Tcp: PassiveOpens`` of
    its network namespace). The client krb5.conf sends every Kerberos
    request over TCP (udp_preference_limit = 1), one connection each, and
    nothing else connects to the DC while a test counts."""
    pid = dc.samba_pid()
    assert pid is not None
    snmp = Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
    header, values = (line.split() for line in snmp if line.startswith("Tcp:"))
    return int(dict(zip(header, values))["PassiveOpens"])


def password_kinit(principal: str, password: str, ccache: Path, **kwargs: object) -> _native.Installation:
    """pamkrb's in-process password kinit (90-second ticket unless told)."""
    kwargs.setdefault("lifetime", 90)
    ccache.unlink(missing_ok=True)
    return _native.obtain_ticket_with_password(principal, bytearray(password.encode()), str(ccache), **kwargs)  # type: ignore[arg-type]


def test_the_cache_holds_the_kdcs_name_for_a_case_variant_and_an_enterprise_upn(
    ad_krb5_config: Path, ad_user: ADUser, tmp_path: Path
) -> None:
    cache = tmp_path / "cc"
    name, realm, upn = ad_user.name, ad_user.realm, ad_user.upn
    asked = {
        (f"{name.upper()}@{realm}", False),
        (f"{name[:1].upper()}{name[1:]}@{realm}", False),
        (upn, True),
        (upn.upper(), True),
    }
    for principal, enterprise in sorted(asked):
        installed = password_kinit(principal, ad_user.password, cache, enterprise=enterprise)
        # The KDC's answer, in the installation and in the file.
        assert installed.ticket.principal == ad_user.principal, principal
        assert _native.inspect_ticket(str(cache)).principal == ad_user.principal, principal
        assert installed.ticket.is_for(ad_user.principal)
    # Without the enterprise flag the UPN's domain is taken for a realm.
    with pytest.raises(KerberosError, match="Cannot find KDC for realm"):
        password_kinit(upn, ad_user.password, cache)


@pytest.mark.parametrize("form", ["upper-case", "enterprise-upn"])
def test_a_renamed_principal_is_kept_without_an_as_request_per_check(
    ad_dc: DomainController, ad_krb5_config: Path, ad_user: ADUser, tmp_path: Path, form: str
) -> None:
    """The template says ``ADUSER@REALM`` (or the UPN, sent as an enterprise
    name), the cache holds ``aduser@REALM``: five checks of the fresh ticket
    ask the KDC nothing, two forced renewals are one TGS request each, and
    the source (an AS request) runs once."""
    enterprise = form == "enterprise-upn"
    configured = ad_user.upn if enterprise else f"{ad_user.name.upper()}@{ad_user.realm}"
    target = Target(username=ad_user.name, principal=configured, ccache=str(tmp_path / "cc"), source="keytab")
    # Samba's KDC refuses to renew a TGT of less than about five minutes
    # ("Ticket expired"; 120 s fails, 600 s works): hence 600 s here.
    rules = KeepingRules(
        refresh_margin=20,
        kdc_timeout=30,
        ticket_lifetime=600,
        renewable_lifetime=900,
        enterprise_principals=enterprise,
    )
    initial_requests = []

    def from_the_password(target: Target, deadline: float) -> _native.Installation:
        # Stands in for a keytab (always there, no user needed): an AS request.
        initial_requests.append(target.principal)
        return keeper.with_password(bytearray(ad_user.password.encode()))(target, deadline)

    keeper = TicketKeeper(
        "ad", lambda: target, rules, flight=lifecycle.SingleFlight("test-ad"), source=from_the_password
    )

    async def scenario() -> tuple[list[str], int, int, list[str]]:
        first = await keeper.refresh("login")
        assert first.info.principal == ad_user.principal
        assert first.target.principal == ad_user.principal
        before = kdc_connections(ad_dc)
        seen = [(await keeper.refresh("check")).info.principal for _ in range(5)]
        checks = kdc_connections(ad_dc) - before
        before = kdc_connections(ad_dc)
        renewed = [(await keeper.refresh("check", force=True)).info for _ in range(2)]
        renewals = kdc_connections(ad_dc) - before
        return seen, checks, renewals, [info.principal for info in renewed]

    seen, checks, renewals, renewed = asyncio.run(scenario())
    assert seen == [ad_user.principal] * 5
    assert checks == 0, "a check of a fresh, renamed ticket asked the KDC"
    # A TGS renewal is one request; an AS exchange would be two (the KDC's
    # preauthentication-required answer, then the request with it).
    assert renewals == 2, renewals
    assert renewed == [ad_user.principal] * 2
    assert initial_requests == [configured], "the source ran again: an AS request per check"
    assert keeper.principal_of(target) == ad_user.principal
    assert _native.inspect_ticket(target.ccache).principal == ad_user.principal


def test_a_must_change_password_is_password_expired(
    ad_dc: DomainController, ad_krb5_config: Path, tmp_path: Path
) -> None:
    name = "admustchg" + secrets.token_hex(3)
    with ad_dc.users(name, must_change=True) as (user,), pytest.raises(PasswordExpired) as expired:
        password_kinit(user.principal, user.password, tmp_path / "cc")
    assert isinstance(expired.value, KerberosError)
    assert not isinstance(expired.value, KerberosPasswordRejected)
    assert expired.value.code == KDC_ERR_KEY_EXPIRED
    message = str(expired.value)
    assert f"the password of {user.principal} has expired and must be changed" in message
    assert "Password has expired" in message  # libkrb5's own words follow
    assert user.password not in message
    assert kdc_refusals.user_message(expired.value) == kdc_refusals.PASSWORD_EXPIRED
    assert not (tmp_path / "cc").exists()


def test_a_locked_and_a_disabled_account_are_account_revoked(
    ad_dc: DomainController, ad_krb5_config: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cc"
    ad_dc.set_password_policy(lockout_threshold=2, lockout_minutes=30)
    try:
        with ad_dc.users("adlock" + secrets.token_hex(3), "addis" + secrets.token_hex(3)) as (locked, disabled):
            for _ in range(2):
                with pytest.raises(KerberosPasswordRejected):
                    password_kinit(locked.principal, "wrong-" + locked.password, cache)
            held = tmp_path / "held"
            password_kinit(disabled.principal, disabled.password, held, lifetime=600, renew_lifetime=900)
            ad_dc.samba_tool("user", "disable", disabled.name)
            # A TGT issued before the account was disabled is not renewed, but
            # Samba says so with KDC_ERR_POLICY, which pamkrb does not guess to
            # be a revoked account: a plain KerberosError.
            with pytest.raises(KerberosError) as policy:
                _native.renew_ticket(disabled.principal, str(held))
            assert not isinstance(policy.value, AccountRevoked)
            assert policy.value.code == KDC_ERR_POLICY
            errors = {}
            for user in (locked, disabled):
                with pytest.raises(AccountRevoked) as revoked:
                    password_kinit(user.principal, user.password, cache)
                errors[user.name] = revoked.value
            for user, error in zip((locked, disabled), errors.values()):
                assert isinstance(error, KerberosError)
                assert error.code == KDC_ERR_CLIENT_REVOKED
                assert str(error).startswith(f"the KDC refuses tickets for {user.principal}: the account is locked, ")
                assert "the KDC does not say which" in str(error)
                assert kdc_refusals.user_message(error) == kdc_refusals.ACCOUNT_REVOKED
            ad_dc.samba_tool("user", "unlock", locked.name)
            assert password_kinit(locked.principal, locked.password, cache).ticket.principal == locked.principal
    finally:
        ad_dc.set_password_policy(lockout_threshold=0)


def test_an_expiring_password_is_reported_and_reaches_the_servers_status(
    ad_dc: DomainController, ad_krb5_config: Path, ad_user: ADUser, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The domain's maximum password age (42 days by default) makes the KDC
    report the expiry with every ticket: the login goes on, the time comes
    back from the native call, the keeper logs it, the hub hands it to the
    server (its environment), and the server's status shows it."""
    target = Target(username=ad_user.name, principal=ad_user.principal, ccache=str(tmp_path / "cc"), source="password")
    rules = KeepingRules(refresh_margin=20, kdc_timeout=30, ticket_lifetime=120)
    keeper = TicketKeeper("ad", lambda: target, rules, flight=lifecycle.SingleFlight("test-ad-expiry"))
    now = time.time()
    caplog.set_level("INFO", logger="pamkrb.keeper")
    in_place = asyncio.run(keeper.replace("login", password=bytearray(ad_user.password.encode())))
    assert in_place.info.principal == ad_user.principal
    expires = keeper.password_expires_at
    assert expires is not None
    assert 41 * 86400 < expires - now <= 42 * 86400 + 60, expires - now
    # The native call reports the same time.
    installed = password_kinit(ad_user.principal, ad_user.password, tmp_path / "again")
    assert installed.password_expires_at == expires
    logged = [r.getMessage() for r in caplog.records if "expires in" in r.getMessage()]
    assert logged
    assert "expires in 42 days" in logged[0] or "expires in 41 days" in logged[0], logged
    assert all(ad_user.password not in line for line in logged)

    # Through the server's environment into its status, as the hub does at spawn.
    settings = lifecycle.TicketSettings(
        principal=in_place.target.principal,
        keytab="",
        ccache=in_place.target.ccache,
        source=lifecycle.SOURCE_PASSWORD,
        refresh_margin=20,
        password_expires_at=expires,
    )
    env = settings.to_env()
    assert env[lifecycle.ENV_PASSWORD_EXPIRES_AT] == str(expires)
    received, missing = lifecycle.TicketSettings.from_env(env)
    assert missing == []
    assert received is not None
    status = asyncio.run(TicketRefresher(received).status())
    assert status["state"] == "valid"
    assert status["password_expires_at"] == lifecycle.iso_time(expires)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(
        json.loads(json.dumps(status))
    )
    # A keytab ticket carries no password expiry.
    without, _ = lifecycle.TicketSettings.from_env({**env, lifecycle.ENV_PASSWORD_EXPIRES_AT: ""})
    assert without is not None
    assert without.password_expires_at is None


@pytest.fixture
def armor_keytab(ad_dc: DomainController, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A computer account's keytab (what ``net ads join`` leaves in
    /etc/krb5.keytab): (account name, keytab)."""
    name = "PKFAST" + secrets.token_hex(3).upper()
    ad_dc.samba_tool("computer", "create", name)
    try:
        # samba-tool creates it disabled and without keys; a join sets both.
        ad_dc.samba_tool("user", "setpassword", f"{name}$", f"--newpassword=Pw-{secrets.token_urlsafe(16)}")
        ad_dc.samba_tool("user", "enable", f"{name}$")
        yield name, ad_dc.export_keytab(f"{name}$@{ad_dc.realm}", tmp_path / "armor.keytab")
    finally:
        ad_dc.samba_tool("computer", "delete", name)


def test_fast_armor_wraps_the_password_request(
    ad_dc: DomainController,
    ad_krb5_config: Path,
    ad_user: ADUser,
    armor_keytab: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Samba 4.17 cannot be told to require FAST (``kdc enable fast`` only
    offers it), so armor is shown by libkrb5's own trace: the armor ticket of
    the computer account, the armored request, and the encrypted-challenge
    preauthentication only FAST allows. A stale armor key fails the login
    with a message naming the armor keytab."""
    computer, keytab = armor_keytab
    trace = tmp_path / "trace"
    monkeypatch.setenv("KRB5_TRACE", str(trace))
    cache = tmp_path / "cc"
    installed = password_kinit(ad_user.principal, ad_user.password, cache, armor_keytab=str(keytab))
    assert installed.ticket.principal == ad_user.principal
    log = trace.read_text()
    assert f"Getting initial credentials for {computer}$@{ad_dc.realm}" in log
    assert "Armoring request" in log or "FAST armor" in log, log[-3000:]
    assert "Encrypted challenge" in log or "PA-ENCRYPTED-CHALLENGE" in log or "(138)" in log, log[-3000:]
    assert ad_user.password not in log

    trace.unlink()
    plain = password_kinit(ad_user.principal, ad_user.password, cache)
    assert plain.ticket.principal == ad_user.principal
    assert "Armoring request" not in trace.read_text()
    monkeypatch.delenv("KRB5_TRACE")

    # A wrong password under armor is still a wrong password.
    with pytest.raises(KerberosPasswordRejected):
        password_kinit(ad_user.principal, "wrong-" + ad_user.password, cache, armor_keytab=str(keytab))
    # The computer's password changes; its exported keys go stale.
    ad_dc.samba_tool("user", "setpassword", f"{computer}$", f"--newpassword=Pw-{secrets.token_urlsafe(16)}")
    with pytest.raises(KerberosError) as stale:
        password_kinit(ad_user.principal, ad_user.password, cache, armor_keytab=str(keytab))
    assert not isinstance(stale.value, KerberosPasswordRejected)
    assert f"getting FAST armor from keytab {keytab}" in str(stale.value)
    assert not cache.exists()
    # A missing armor keytab is a keytab error, before any KDC.
    with pytest.raises(KeytabError):
        password_kinit(ad_user.principal, ad_user.password, cache, armor_keytab=str(tmp_path / "missing.keytab"))


def only_enctype(source: Path, enctype: int, dest: Path) -> Path:
    """A copy of keytab ``source`` with only its ``enctype`` entries (the
    keytab v2 format: a version, then length-prefixed entries)."""
    data = source.read_bytes()
    out, offset = bytearray(data[:2]), 2
    while offset < len(data):
        (size,) = struct.unpack_from(">i", data, offset)
        entry = data[offset + 4 : offset + 4 + abs(size)]
        offset += 4 + abs(size)
        if size <= 0:
            continue
        count = struct.unpack_from(">H", entry, 0)[0]
        pos = 2
        for _ in range(count + 1):  # realm and components
            pos += 2 + struct.unpack_from(">H", entry, pos)[0]
        pos += 4 + 4 + 1  # name type, timestamp, 8-bit kvno
        (kind,) = struct.unpack_from(">H", entry, pos)
        if kind == enctype:
            out += struct.pack(">i", size) + entry
    dest.write_bytes(bytes(out))
    dest.chmod(0o600)
    return dest


def test_an_exported_keytab_with_rc4_works_and_doctor_reports_its_enctypes(
    ad_dc: DomainController, ad_krb5_config: Path, ad_user: ADUser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``samba-tool domain exportkeytab`` writes aes256, aes128 and RC4 keys:
    the keytab gets a ticket as it is, its RC4 key alone does on a host that
    asks for RC4 only (the KDC answers in the strongest enctype both sides
    have, so an RC4-only keytab fails where AES is asked for), and doctor
    lists the keys against the host's permitted_enctypes."""
    exported = ad_dc.export_keytab(ad_user.principal, tmp_path / "user.keytab")
    rc4 = only_enctype(exported, RC4, tmp_path / "rc4.keytab")
    assert [e.enctype for e in _native.inspect_keytab(str(rc4)).entries] == [RC4]
    cache = str(tmp_path / "cc")

    def use_conf(permitted: str | None) -> None:
        conf = tmp_path / "krb5.conf"
        text = ad_krb5_config.read_text()
        if permitted is not None:
            settings = "".join(f"    {key} = {permitted}\n" for key in ("permitted_enctypes", "default_tkt_enctypes"))
            text = text.replace("[libdefaults]\n", "[libdefaults]\n" + settings, 1)
        conf.write_text(text)
        monkeypatch.setenv("KRB5_CONFIG", str(conf))

    use_conf(None)
    installed = _native.obtain_ticket(ad_user.principal, str(exported), cache, lifetime=90)
    assert installed.ticket.principal == ad_user.principal
    with pytest.raises(KerberosError, match="Key table entry not found"):
        _native.obtain_ticket(ad_user.principal, str(rc4), cache, lifetime=90)
    use_conf("arcfour-hmac")
    assert _native.permitted_enctypes() == [RC4]
    assert _native.obtain_ticket(ad_user.principal, str(rc4), cache, lifetime=90).ticket.principal == ad_user.principal

    paths = lifecycle.UserPaths(ad_user.name, 0, 0, "", ad_user.principal, str(exported), cache)

    def doctor(keytab: Path, permitted: str | None) -> str:
        use_conf(permitted)
        out = io.StringIO()
        check_keytab_enctypes(dataclasses.replace(paths, keytab=str(keytab)), Report(out))
        return out.getvalue()

    full = doctor(exported, None)
    assert full.startswith("OK  "), full
    assert "aes256-cts-hmac-sha1-96" in full
    assert "arcfour-hmac" in full
    assert "not permitted" not in full
    aes_only = doctor(exported, "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96")
    assert aes_only.startswith("OK  "), aes_only
    assert "arcfour-hmac (not permitted here)" in aes_only
    weak = doctor(rc4, None)
    assert weak.startswith("WARN"), weak
    assert "only weak keys (RC4)" in weak
    refused = doctor(rc4, "aes256-cts-hmac-sha1-96")
    assert refused.startswith("FAIL"), refused
    assert "none of the keys is in an enctype this host permits" in refused


class SignInBoundary:
    """The authenticator as the hub's sign-in route sees it, for the one
    test below: PAM is stood in for (it accepted the password); the ticket
    comes from a real keeper and the real DC."""

    def __init__(self, keeper: TicketKeeper, password: str) -> None:
        self._keeper = keeper
        self._password = password
        self.log = logging.getLogger("test-ad-sign-in")
        self.tickets = self  # HubTickets' keeper(), here

    async def authenticate(self, handler: object, data: dict[str, str]) -> str:
        return data["username"]

    def take_password(self, handler: object, username: str) -> bytearray:
        return bytearray(self._password.encode())

    def normalize_username(self, name: str) -> str:
        return name

    def keeper(self, username: str) -> TicketKeeper:
        return self._keeper


def test_sign_in_again_with_a_must_change_password_is_a_403_that_says_why(
    ad_dc: DomainController, ad_krb5_config: Path, tmp_path: Path
) -> None:
    """``POST /hub/api/.../signin`` (ticket_api._sign_in_again): the KDC's
    PasswordExpired becomes a 403 whose message the server's sign-in dialog
    shows, not a 503 "see the hub log" and not a 500."""
    with ad_dc.users("adsignin" + secrets.token_hex(3), must_change=True) as (user,):
        target = Target(username=user.name, principal=user.principal, ccache=str(tmp_path / "cc"), source="password")
        rules = KeepingRules(refresh_margin=20, kdc_timeout=30, ticket_lifetime=600)
        keeper = TicketKeeper("ad", lambda: target, rules, flight=lifecycle.SingleFlight("test-ad-sign-in"))
        auth = SignInBoundary(keeper, user.password)
        with pytest.raises(web.HTTPError) as refused:
            asyncio.run(ticket_api._sign_in_again(auth, None, user.name, user.password))  # type: ignore[arg-type]
    assert refused.value.status_code == 403
    assert refused.value.log_message == kdc_refusals.PASSWORD_EXPIRED
    assert not (tmp_path / "cc").exists()


def test_the_ad_traits_reach_every_keeper_and_a_relative_armor_path_is_refused() -> None:
    auth = PAMKerberosAuthenticator(
        realm="AD.PAMKRB.TEST", enterprise_principals=True, fast_armor_keytab="/etc/krb5.keytab"
    )
    rules = auth.tickets.keeper("alice").rules
    assert rules.enterprise_principals is True
    assert rules.fast_armor_keytab == "/etc/krb5.keytab"
    default = PAMKerberosAuthenticator(realm="AD.PAMKRB.TEST").tickets.keeper("alice").rules
    assert (default.enterprise_principals, default.fast_armor_keytab) == (False, "")
    with pytest.raises(TraitError, match="fast_armor_keytab must be an absolute path"):
        PAMKerberosAuthenticator(realm="AD.PAMKRB.TEST", fast_armor_keytab="krb5.keytab")
