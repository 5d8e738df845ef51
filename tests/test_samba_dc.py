"""What an Active Directory KDC does that an MIT-shaped product must expect.

Against Samba 4.17's AD DC from Debian (Heimdal KDC inside;
``tools/sandbox/samba.py``), started once per session in its own network and
PID namespaces, from the host's MIT krb5 1.20 tools and pamkrb's own native
calls. These are the facts issue 21's product work builds on; each assertion
fails if the harness (or the DC) is not what it claims to be.

- A client-requested 90-second ticket is granted (the DC's own lifetimes are
  whole hours); a renewable one when renewal is asked for.
- MIT kinit's cache holds the principal **as typed** (``ADUSER@REALM``),
  which ``TicketInfo.is_for("aduser@REALM")`` does not match; with
  canonicalization (``kinit -C``, which pamkrb always asks for) it holds
  ``aduser@REALM``. An enterprise name (``kinit -E
  aduser@ad.pamkrb.test``) is stored as ``aduser\\@ad.pamkrb.test@REALM``
  unless canonicalization is requested too. Without ``-E``, the UPN's domain
  is taken for a realm nobody knows.
- ``samba-tool domain exportkeytab`` writes aes256, aes128 and arcfour-hmac
  (RC4) keys under ``sAMAccountName@REALM``, also when asked for the UPN, and
  such a keytab gets a ticket for that name, not for the UPN.
- A password that must be changed: KDC_ERR_KEY_EXPIRED ("Password has
  expired"), not a rejected password. A locked account and a disabled one:
  both KDC_ERR_CLIENT_REVOKED ("Client's credentials have been revoked").
  Wrong passwords sent to the KDC count towards the domain's lockout, and a
  right one in between resets the count.
- MIT kinit warns of the password's expiry (default maximum age 42 days);
  pamkrb's password kinit, which has no prompter, gets its ticket all the same.

On a member joined with winbind (``winbind use default domain = no``, idmap
``rid``), inside the member's namespaces only:

- ``getent passwd`` knows ``DOMAIN\\user`` and the UPN ``user@dns.domain`` as
  the same ``DOMAIN\\user`` with uid 4000000 + RID; the bare ``user`` is
  unknown. The host itself knows none of them.
- pam_winbind accepts ``DOMAIN\\user``, ``DOMAIN\\USER``, the UPN in either
  case and rewrites PAM_USER to ``DOMAIN\\user`` (lower case, as stored).
  A bare ``user`` is PAM_USER_UNKNOWN (10), a wrong password PAM_AUTH_ERR
  (7). A must-change password passes pam_authenticate and is refused by
  pam_acct_mgmt with PAM_NEW_AUTHTOK_REQD (12).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pamkrb import _native
from pamkrb.exceptions import KerberosError, KerberosPasswordRejected, KeytabError
from sandbox.samba import MEMBER_IDMAP_BASE, MEMBER_PAM_SERVICE, ADUser, DomainController, DomainMember

# The session's domain controller: ad_dc, ad_krb5_config.
pytest_plugins = ["samba_fixtures"]

# krb5 error codes (com_err table of MIT krb5 1.20, krb5.h).
KDC_ERR_CLIENT_REVOKED = -1765328366
KDC_ERR_KEY_EXPIRED = -1765328361
KDC_ERR_PREAUTH_FAILED = -1765328360
ENCTYPES = {18: "aes256-cts-hmac-sha1-96", 17: "aes128-cts-hmac-sha1-96", 23: "arcfour-hmac"}


def password_kinit(principal: str, password: str, ccache: Path, **kwargs: int) -> _native.TicketInfo:
    """pamkrb's in-process password kinit (90-second ticket unless told)."""
    kwargs.setdefault("lifetime", 90)
    ccache.unlink(missing_ok=True)
    return _native.obtain_ticket_with_password(principal, bytearray(password.encode()), str(ccache), **kwargs).ticket


def mit_kinit(dc: DomainController, ccache: Path, password: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The host's MIT ``kinit -l 90s ARGS`` with the password on stdin."""
    ccache.unlink(missing_ok=True)
    env = dc.client_env()
    env["KRB5CCNAME"] = f"FILE:{ccache}"
    return subprocess.run(
        ["kinit", "-l", "90s", *args],
        input=password + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def host_listening_tcp_ports() -> set[int]:
    """Ports something listens on in this (the host's) network namespace."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def ad_user(ad_dc: DomainController) -> Iterator[ADUser]:
    """A fresh account for one test, deleted afterwards."""
    with ad_dc.users("ad" + secrets.token_hex(5)) as (user,):
        yield user


def test_the_dc_runs_contained(ad_dc: DomainController) -> None:
    """samba is PID 1 of a PID namespace of its own, in a network namespace of
    its own, and every Samba process of the DC runs below it."""
    processes = ad_dc.processes()
    samba = ad_dc.samba_pid()
    assert samba is not None
    assert processes[samba] == "samba"
    assert {"samba", "smbd"} <= set(processes.values())
    for kind in ("pid", "net", "mnt"):
        assert os.readlink(f"/proc/{samba}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}"), kind
    status = Path(f"/proc/{samba}/status").read_text()
    assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), "samba is not PID 1 of its namespace"
    # Its KDC, LDAP and SMB answer at its address, over the veth pair, and
    # none of them listens in the host's network namespace.
    assert all(ad_dc.accepts(port) for port in (88, 389, 445))
    assert not {88, 389, 445} & host_listening_tcp_ports()
    assert ad_dc.address.startswith("169.254.")
    assert not ad_dc.address.startswith("169.254.169.")


def test_password_kinit_gets_the_90_second_ticket_it_asks_for(
    ad_dc: DomainController, ad_krb5_config: Path, ad_user: ADUser, tmp_path: Path
) -> None:
    ticket = password_kinit(ad_user.principal, ad_user.password, tmp_path / "cc")
    assert ticket.principal == ad_user.principal
    assert ticket.expires_at - ticket.starts_at == 90
    assert not ticket.renewable
    assert ticket.is_for(ad_user.principal)

    renewable = password_kinit(ad_user.principal, ad_user.password, tmp_path / "cc", renew_lifetime=300)
    assert renewable.renewable
    assert renewable.renew_until is not None
    assert renewable.renew_until - renewable.starts_at == 300

    # MIT kinit shows the expiry warning (the domain's default maximum password
    # age is 42 days) that pamkrb's prompter-less kinit above went past.
    result = mit_kinit(ad_dc, tmp_path / "cc", ad_user.password, ad_user.principal)
    assert result.returncode == 0, result.stderr
    assert re.search(r"password will expire in 4[12] days", result.stdout + result.stderr)


def test_a_wrong_password_is_rejected_as_preauthentication_failed(
    ad_krb5_config: Path, ad_user: ADUser, tmp_path: Path
) -> None:
    with pytest.raises(KerberosPasswordRejected) as rejected:
        password_kinit(ad_user.principal, ad_user.password + "x", tmp_path / "cc")
    assert rejected.value.code == KDC_ERR_PREAUTH_FAILED


def test_the_cache_keeps_the_principal_as_typed_unless_canonicalized(
    ad_dc: DomainController, ad_krb5_config: Path, ad_user: ADUser, tmp_path: Path
) -> None:
    name, realm, upn = ad_user.name, ad_user.realm, ad_user.upn
    cache = tmp_path / "cc"
    cases = [
        ([name], f"{name}@{realm}"),
        ([name.upper()], f"{name.upper()}@{realm}"),
        (["-C", name.upper()], f"{name}@{realm}"),
        (["-E", upn], f"{name}\\@{ad_user.dns_domain}@{realm}"),
        (["-E", "-C", upn], f"{name}@{realm}"),
        (["-E", "-C", upn.upper()], f"{name}@{realm}"),
    ]
    stored = {}
    for args, _ in cases:
        result = mit_kinit(ad_dc, cache, ad_user.password, *args)
        assert result.returncode == 0, (args, result.stderr)
        stored[" ".join(args)] = _native.inspect_ticket(str(cache)).principal
    assert stored == {" ".join(args): expected for args, expected in cases}

    # Without -E the UPN's domain is read as a realm, which has no KDC.
    result = mit_kinit(ad_dc, cache, ad_user.password, upn)
    assert result.returncode != 0
    assert f'Cannot find KDC for realm "{ad_user.dns_domain}"' in result.stderr

    # pamkrb asks with canonicalization (tests/test_ad_tickets.py has the
    # rest): the cache holds the account's own name, whatever case was typed.
    typed = password_kinit(f"{name.upper()}@{realm}", ad_user.password, cache)
    assert typed.principal == f"{name}@{realm}"
    assert typed.is_for(ad_user.principal)


def test_an_exported_keytab_holds_aes_and_rc4_keys_of_the_account_name(
    ad_dc: DomainController, ad_krb5_config: Path, ad_user: ADUser, tmp_path: Path
) -> None:
    by_principal = ad_dc.export_keytab(ad_user.principal, tmp_path / "principal.keytab")
    by_upn = ad_dc.export_keytab(ad_user.upn, tmp_path / "upn.keytab")
    for keytab in (by_principal, by_upn):
        entries = _native.inspect_keytab(str(keytab)).entries
        assert {e.principal for e in entries} == {ad_user.principal}, keytab.name
        assert {e.enctype: e.enctype_name for e in entries} == ENCTYPES, keytab.name
        assert len({e.kvno for e in entries}) == 1

    ticket = _native.obtain_ticket(ad_user.principal, str(by_upn), str(tmp_path / "cc"), lifetime=90).ticket
    assert ticket.principal == ad_user.principal
    assert ticket.expires_at - ticket.starts_at == 90
    with pytest.raises(KeytabError, match="has no key for"):
        _native.obtain_ticket(ad_user.upn, str(by_upn), str(tmp_path / "cc"), lifetime=90)

    # The DC changes the keys with the password: the old keytab stops working.
    ad_dc.set_password(ad_user.name, ad_user.password + "-new")
    with pytest.raises(KerberosError):
        _native.obtain_ticket(ad_user.principal, str(by_principal), str(tmp_path / "cc"), lifetime=90)


def test_a_password_that_must_be_changed_is_expired_not_wrong(
    ad_dc: DomainController, ad_krb5_config: Path, tmp_path: Path
) -> None:
    with ad_dc.users("admustchange", must_change=True) as (user,):
        with pytest.raises(KerberosError) as expired:
            password_kinit(user.principal, user.password, tmp_path / "cc")
        assert not isinstance(expired.value, KerberosPasswordRejected)
        assert expired.value.code == KDC_ERR_KEY_EXPIRED
        assert "Password has expired" in str(expired.value)
        # A wrong password is still told apart: the KDC checks it first.
        with pytest.raises(KerberosPasswordRejected):
            password_kinit(user.principal, user.password + "x", tmp_path / "cc")
        # The flag, not the account, was the reason.
        ad_dc.set_password(user.name, user.password)
        assert password_kinit(user.principal, user.password, tmp_path / "cc").principal == user.principal


def test_a_locked_account_is_revoked_like_a_disabled_one(
    ad_dc: DomainController, ad_krb5_config: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cc"
    ad_dc.set_password_policy(lockout_threshold=3, lockout_minutes=30)
    try:
        with ad_dc.users("adlocked", "addisabled") as (locked, disabled):
            # Two wrong passwords and a right one: the count is reset, not locked.
            for _ in range(2):
                with pytest.raises(KerberosPasswordRejected):
                    password_kinit(locked.principal, "wrong-" + locked.password, cache)
            assert ad_dc.user_attributes(locked.name)["badPwdCount"] == "2"
            password_kinit(locked.principal, locked.password, cache)
            assert ad_dc.user_attributes(locked.name)["badPwdCount"] == "0"

            # Three wrong passwords to the KDC lock the account.
            for _ in range(3):
                with pytest.raises(KerberosPasswordRejected):
                    password_kinit(locked.principal, "wrong-" + locked.password, cache)
            attributes = ad_dc.user_attributes(locked.name)
            assert attributes["badPwdCount"] == "3"
            assert int(attributes["lockoutTime"]) > 0
            with pytest.raises(KerberosError) as revoked:
                password_kinit(locked.principal, locked.password, cache)
            assert revoked.value.code == KDC_ERR_CLIENT_REVOKED
            assert "credentials have been revoked" in str(revoked.value)

            ad_dc.samba_tool("user", "disable", disabled.name)
            with pytest.raises(KerberosError) as disabled_error:
                password_kinit(disabled.principal, disabled.password, cache)
            assert disabled_error.value.code == KDC_ERR_CLIENT_REVOKED
            # Same code and text: the KDC does not tell locked from disabled.
            assert str(disabled_error.value).replace(disabled.name, "X") == str(revoked.value).replace(locked.name, "X")

            ad_dc.samba_tool("user", "unlock", locked.name)
            assert password_kinit(locked.principal, locked.password, cache).principal == locked.principal
    finally:
        ad_dc.set_password_policy(lockout_threshold=0)


# -- a member joined with winbind ------------------------------------------------

# pam_authenticate and pam_acct_mgmt through pamela (JupyterHub's PAM library,
# which takes any name), run on the member. Reads [[name, password], ...] as
# JSON on stdin; prints, for each, the two return codes and PAM_USER after
# authentication.
PAM_PROBE = """\
import json, sys
import pamela
results = []
for name, password in json.load(sys.stdin):
    # Kept referenced: PAM calls it after pam_start returns.
    conversation = pamela.new_simple_password_conv((password,), "utf-8")
    handle = pamela.pam_start(sys.argv[1], name, conversation)
    auth = pamela.PAM_AUTHENTICATE(handle, 0)
    user = handle.get_item(pamela.PAM_USER)
    acct = pamela.PAM_ACCT_MGMT(handle, 0) if auth == 0 else None
    pamela.PAM_END(handle, 0)
    results.append({"authenticate": auth, "acct_mgmt": acct, "pam_user": user})
print(json.dumps(results))
"""
PAM_SUCCESS, PAM_AUTH_ERR, PAM_USER_UNKNOWN, PAM_NEW_AUTHTOK_REQD = 0, 7, 10, 12


def member_pam(member: DomainMember, *attempts: tuple[str, str]) -> list[dict[str, object]]:
    result = member.run(
        ["/opt/pamkrb/venv/bin/python", "-c", PAM_PROBE, MEMBER_PAM_SERVICE], input=json.dumps(attempts)
    )
    return json.loads(result.stdout)


def test_a_member_resolves_domain_users_only_in_its_namespace(
    ad_dc: DomainController, ad_member: DomainMember, ad_user: ADUser
) -> None:
    rid = int(ad_dc.user_attributes(ad_user.name)["objectSid"].rsplit("-", 1)[1])
    qualified = f"{ad_dc.netbios_domain}\\{ad_user.name}"
    expected = f"{qualified}:*:{MEMBER_IDMAP_BASE + rid}:{MEMBER_IDMAP_BASE + 513}:"
    for name in (qualified, ad_user.upn):
        entry = ad_member.run(["getent", "passwd", name]).stdout
        assert entry.startswith(expected), name
    assert ad_member.run(["getent", "passwd", ad_user.name], check=False).returncode == 2

    # The host itself: no winbind in its NSS or PAM, and no such user.
    host = subprocess.run(["getent", "passwd", qualified], capture_output=True, check=False)
    assert host.returncode == 2
    assert "winbind" not in Path("/etc/nsswitch.conf").read_text()
    assert not any("pam_winbind" in p.read_text() for p in Path("/etc/pam.d").glob("common-*"))
    assert not Path("/etc/pam.d", MEMBER_PAM_SERVICE).exists()


def test_pam_winbind_accepts_domain_and_upn_forms_and_settles_on_domain_backslash_user(
    ad_dc: DomainController, ad_member: DomainMember, ad_user: ADUser
) -> None:
    qualified = f"{ad_dc.netbios_domain}\\{ad_user.name}"
    forms = [qualified, f"{ad_dc.netbios_domain}\\{ad_user.name.upper()}", ad_user.upn, ad_user.upn.upper()]
    results = member_pam(ad_member, *[(form, ad_user.password) for form in forms])
    for form, result in zip(forms, results, strict=True):
        assert result == {"authenticate": PAM_SUCCESS, "acct_mgmt": PAM_SUCCESS, "pam_user": qualified}, form

    bare, wrong = member_pam(ad_member, (ad_user.name, ad_user.password), (qualified, ad_user.password + "x"))
    assert bare["authenticate"] == PAM_USER_UNKNOWN
    assert wrong["authenticate"] == PAM_AUTH_ERR


def test_pam_winbind_lets_a_must_change_password_through_authenticate_and_stops_it_at_account(
    ad_dc: DomainController, ad_member: DomainMember
) -> None:
    with ad_dc.users("admembermust", must_change=True) as (user,):
        (result,) = member_pam(ad_member, (f"{ad_dc.netbios_domain}\\{user.name}", user.password))
        assert result["authenticate"] == PAM_SUCCESS
        assert result["acct_mgmt"] == PAM_NEW_AUTHTOK_REQD
