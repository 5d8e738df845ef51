"""The one rule from the name PAM settled on to the names pamkrb uses.

A host that sees Active Directory users through winbind or SSSD accepts one
person under several login names (``ADPAMKRB\\adalice``, ``ADPAMKRB\\ADALICE``,
``adalice@ad.example``, with a default domain also ``adalice``) and PAM
settles on one of them (PAM_USER: winbind's ``ADPAMKRB\\adalice``, SSSD's
``adalice@ad.example``). The rule, applied to that name:

1. The name must pass the username check (src/template.rs
   ``split_username``): a user part from ``[A-Za-z0-9._-]`` (optional
   trailing ``$``) and at most one domain, before one ``\\`` or after one
   ``@``, made of DNS/NetBIOS labels. No ``/``, no ``..``, no control
   characters, at most 256 bytes.
2. A name with a domain is looked up in the password database (NSS) and
   replaced by the name NSS gives back, so every form of one account gives the
   same result. It is then split into ``user`` and ``domain``, both
   lower-cased (domains are case-insensitive, and so are AD account names).
   A local name (no domain) is used as the password database has it.
3. JupyterHub's username (its URLs) is ``user`` when the host resolves the
   bare ``user`` to the same account (winbind's default domain, SSSD without
   fully qualified names) and domains are not kept; otherwise
   ``user@domain``, which winbind and SSSD resolve too. It never holds a
   ``\\`` (a browser turns it into ``/``) and always names the account
   through NSS, so spawners that look the user up by name find it, and two
   accounts never share a JupyterHub user.
4. In templates: ``{user}`` and ``{domain}`` are the parts (``{domain}`` is
   empty for a local account), ``{username}`` is ``user@domain`` for a
   domain account and the local name otherwise.
"""

from __future__ import annotations

import pwd
from collections.abc import Callable
from dataclasses import dataclass

from . import _native
from .exceptions import InvalidUsername

Lookup = Callable[[str], "pwd.struct_passwd | None"]


def nss_lookup(name: str) -> pwd.struct_passwd | None:
    """The password database entry of ``name``, or None if NSS has none."""
    try:
        return pwd.getpwnam(name)
    except (KeyError, UnicodeEncodeError, ValueError):
        return None


@dataclass(frozen=True)
class Username:
    """A login name, split. ``account`` is the name as the password
    database has it; ``user``/``domain`` as in the module's rule."""

    account: str
    user: str
    domain: str

    @property
    def qualified(self) -> str:
        """``{username}`` in templates: ``user@domain``, or the local name."""
        return f"{self.user}@{self.domain}" if self.domain else self.user


def split(name: str) -> Username:
    """Check ``name`` (InvalidUsername if unsafe) and split it: lower-cased
    parts for a domain account, the name unchanged for a local one. No NSS
    lookup: see :func:`canonical` for that."""
    _check(name)
    if "\\" in name:
        domain, user = name.split("\\", 1)
    elif "@" in name:
        user, domain = name.split("@", 1)
    else:
        return Username(account=name, user=name, domain="")
    return Username(account=name, user=user.lower(), domain=domain.lower())


def canonical(name: str, lookup: Lookup | None = None) -> Username:
    """Rules 1-2: ``name`` checked, a domain account replaced by the name NSS
    gives for it (when NSS knows it and that name passes the check too),
    then split."""
    given = split(name)
    if not given.domain:
        return given
    entry = (lookup or nss_lookup)(name)
    if entry is None or entry.pw_name == name:
        return given
    try:
        return split(entry.pw_name)
    except InvalidUsername:
        return given


def hub_name(name: str, *, keep_domain: bool = False, lookup: Lookup | None = None) -> str:
    """Rule 3: JupyterHub's username for the login name ``name``
    (InvalidUsername if unsafe). Before JupyterHub's ``username_map``."""
    lookup = lookup or nss_lookup
    parts = canonical(name, lookup)
    if not parts.domain:
        return parts.user.lower()
    if not keep_domain:
        bare, account = lookup(parts.user), lookup(parts.account)
        if bare is not None and account is not None and bare.pw_uid == account.pw_uid:
            return parts.user
    return parts.qualified


def account_name(hub_username: str, lookup: Lookup | None = None) -> str:
    """The password database's name for a JupyterHub username made by
    :func:`hub_name` (``adalice@adpamkrb`` -> ``ADPAMKRB\\adalice``): what
    PAM is given when the user signs in again. The name itself when NSS does
    not know it."""
    entry = (lookup or nss_lookup)(hub_username)
    return entry.pw_name if entry is not None else hub_username


def by_uid(name: str) -> str:
    """The password database's name for the uid of ``name`` (JupyterHub's
    ``pam_normalize_username`` round trip); ``name`` when NSS knows neither."""
    entry = nss_lookup(name)
    if entry is None:
        return name
    try:
        return pwd.getpwuid(entry.pw_uid).pw_name
    except KeyError:
        return name


def _check(name: str) -> None:
    try:
        _native.check_username(name)
    except UnicodeEncodeError:
        # A lone surrogate cannot cross into Rust as UTF-8.
        raise InvalidUsername("invalid username: not UTF-8") from None
