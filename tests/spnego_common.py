"""What the single sign-on tests share (tests/test_spnego.py,
tests/test_spnego_browser.py) besides their fixtures, which are in
spnego_fixtures.py: the service's name, the desktop's kinit, klist's flags and
:class:`SSO`, the parts of one test.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sandbox
from conftest import HubFactory

SERVICE = "HTTP/127.0.0.1"  # curl names the service after the URL's host


def principal_exists(realm: sandbox.Realm, principal: str) -> bool:
    return principal in realm.kadmin("listprincs")


def desktop_kinit(realm: sandbox.Realm, user: sandbox.UnixUser, cache: Path, *lifetimes: str) -> None:
    """A forwardable TGT of ``user`` into ``cache`` from their keytab, as
    their desktop's sign-in would get one; ``lifetimes``: kinit's -l/-r."""
    subprocess.run(
        [
            "kinit",
            "-f",
            *lifetimes,
            "-k",
            "-t",
            str(user.home / f"{user.name}.keytab"),
            "-c",
            f"FILE:{cache}",
            user.name,
        ],
        env=realm.client_env(),
        check=True,
        capture_output=True,
        timeout=30,
    )


def flags(realm: sandbox.Realm, cache: str | Path) -> str:
    """The TGT's flags in ``cache``, as klist -f shows them."""
    out = subprocess.run(
        ["klist", "-f", "-c", f"FILE:{cache}"], env=realm.client_env(), capture_output=True, text=True, check=True
    ).stdout
    rows = out.splitlines()
    for i, line in enumerate(rows):
        if "krbtgt/" in line:
            for following in rows[i + 1 : i + 4]:
                match = re.search(r"Flags: (\S+)", following)
                if match:
                    return match[1]
    raise AssertionError(out)


@dataclass
class SSO:
    """A single sign-on test's parts: the realm, the user, their desktop's
    cache, the hub's service keytab and the hub factory."""

    hub_factory: HubFactory
    realm: sandbox.Realm
    keytab: Path
    user: sandbox.UnixUser
    cache: Path

    def hub(
        self,
        keytab: Path | None = None,
        *,
        settings: dict[str, Any] | None = None,
        extra_config: str = "",
        **config: Any,
    ) -> sandbox.Hub:
        """A hub with single sign-on on ``keytab`` (default the service
        keytab); ``config``: more PAMKerberosAuthenticator traits,
        ``settings``: other classes' traits."""
        hub_settings: dict[str, Any] = {
            "PAMKerberosAuthenticator.spnego": True,
            "PAMKerberosAuthenticator.spnego_keytab": str(keytab or self.keytab),
            **{f"PAMKerberosAuthenticator.{k}": v for k, v in config.items()},
            **(settings or {}),
        }
        return self.hub_factory(hub_settings, extra_config=extra_config)

    def kinit(self, *lifetimes: str) -> None:
        """The desktop signs in again (an AS request)."""
        desktop_kinit(self.realm, self.user, self.cache, *lifetimes)

    def server_flags(self) -> str:
        """The flags of the TGT in the user's server-side cache."""
        return flags(self.realm, self.user.default_ccache)

    def as_requests(self) -> int:
        return self.realm.kdc_requests("AS_REQ", client=self.user.name)
