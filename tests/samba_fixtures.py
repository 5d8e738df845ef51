"""The session's one Samba AD domain controller, shared by every AD test module.

A test module uses it with ``pytest_plugins = ["samba_fixtures"]``: a plugin is
registered once per session, so every module gets the same DC (started once,
10-20 s) instead of one per definition site.

- ``ad_dc``: the :class:`sandbox.samba.DomainController` of realm
  ``AD.PAMKRB.TEST``, in its own network and PID namespaces; not exported to
  this process's KRB5_CONFIG (the session ``realm`` may be). Its start-up
  figures and logs go to test-artifacts/samba/.
- ``ad_member``: this host joined to that domain with winbind
  (:class:`sandbox.samba.DomainMember`), visible only inside its own mount
  namespaces; its logs go to test-artifacts/samba/member/.
- ``ad_krb5_config``: KRB5_CONFIG pointed at the DC's client ``krb5.conf`` for
  one test, so pamkrb's in-process libkrb5 calls talk to the DC.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ARTIFACTS, require_root
from sandbox.samba import DomainController, DomainMember


@pytest.fixture(scope="session")
def ad_dc() -> Iterator[DomainController]:
    """One Samba AD DC for the whole session; stopped (every process, its
    namespaces, the veth pair, its directory) at the end, also on failure."""
    require_root()
    missing = [tool for tool in ("samba", "samba-tool", "nsenter", "unshare", "ip") if shutil.which(tool) is None]
    if missing:
        # tools/setup.sh installs them; a machine without them is not set up, not a reason to pass.
        pytest.fail(f"{', '.join(missing)} not found: run tools/setup.sh (installs samba-ad-dc)")
    dc = DomainController()
    artifacts = ARTIFACTS / "samba"
    figures: dict[str, object] = {}
    try:
        dc.start()
        figures["start_seconds"] = round(dc.start_seconds or 0, 2)
        figures["provision_seconds"] = round(dc.provision_seconds or 0, 2)
        figures["memory_bytes_at_start"] = dc.resident_memory()
        yield dc
        figures["memory_bytes_at_end"] = dc.resident_memory()
        figures["processes_at_end"] = sorted(dc.processes().values())
    finally:
        dc.stop()
        artifacts.mkdir(parents=True, exist_ok=True)
        for log in sorted(dc.log_dir.glob("*")) if dc.log_dir.is_dir() else []:
            if log.is_file():
                shutil.copyfile(log, artifacts / log.name)
        if figures:
            (artifacts / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
        dc.close()


@pytest.fixture(scope="session")
def ad_member(ad_dc: DomainController) -> Iterator[DomainMember]:
    """This host as a member of the DC's domain (joined once per session)."""
    member = DomainMember(ad_dc)
    try:
        member.start()
        yield member
    finally:
        member.stop()
        artifacts = ARTIFACTS / "samba" / "member"
        artifacts.mkdir(parents=True, exist_ok=True)
        if member.start_seconds is not None:
            figures = {"join_and_winbindd_start_seconds": round(member.start_seconds, 2)}
            (artifacts / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
        for log in sorted(member.log_dir.glob("*")) if member.log_dir.is_dir() else []:
            if log.is_file():
                shutil.copyfile(log, artifacts / log.name)
        member.close()


@pytest.fixture
def ad_krb5_config(ad_dc: DomainController, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KRB5_CONFIG names the DC's client krb5.conf for this test (restored after).

    pamkrb creates a libkrb5 context per call, which reads KRB5_CONFIG then."""
    monkeypatch.setenv("KRB5_CONFIG", str(ad_dc.krb5_conf))
    monkeypatch.delenv("KRB5CCNAME", raising=False)
    return ad_dc.krb5_conf
