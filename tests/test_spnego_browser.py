"""Single sign-on in a real browser (issue 23): headless Chromium with its own
credential cache, as a signed-in desktop user has, opens the hub and lands in
a running JupyterLab with no form; the server's cache is the user's (0600,
their principal) and a kernel sees it.

Chromium 156 negotiates with hosts named by ``--auth-server-allowlist``, but
on Linux it loads libgssapi only in a browser started after a profile has
once seen a Negotiate challenge (the network service's sandbox is relaxed at
the next start, `ReceivedHttpAuthNegotiateHeader` in "Local State"): the test
opens the login page once to record that, then starts the browser again with
the same profile, as a desktop user's long-lived profile would be. It has no
command-line switch for delegation, only the
``AuthNegotiateDelegateAllowlist`` policy, read from
/etc/chromium/policies/managed/. The delegating browser therefore runs in a
private mount namespace whose /etc/chromium holds that policy: the host's
/etc is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM, persistent_context, require_chromium
from spnego_common import SERVICE, SSO

import sandbox
from conftest import artifact_dir, require_root

pytest_plugins = ["spnego_fixtures"]

HOST = SERVICE.split("/", 1)[1]

# Runs as root before Chromium: a private mount namespace, the policy
# directory bind-mounted over /etc/chromium, then Chromium itself (argv as
# Playwright gave it). No shell; the paths are baked in by the test.
WRAPPER = """\
import ctypes, os, subprocess, sys
CLONE_NEWNS = 0x00020000
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(CLONE_NEWNS) != 0:
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "--bind", {etc!r}, "/etc/chromium"], check=True)
os.execv({chromium!r}, [{chromium!r}, *sys.argv[1:]])
"""


def delegating_chromium(directory: Path) -> str:
    """A launcher for Chromium with the delegation policy for HOST."""
    etc = directory / "etc-chromium"
    (etc / "policies" / "managed").mkdir(parents=True)
    if os.path.exists("/etc/chromium/master_preferences"):
        shutil.copy("/etc/chromium/master_preferences", etc / "master_preferences")
    policy = {"AuthServerAllowlist": HOST, "AuthNegotiateDelegateAllowlist": HOST}
    (etc / "policies" / "managed" / "pamkrb-test.json").write_text(json.dumps(policy))
    launcher = directory / "chromium"
    launcher.write_text(f"#!{sys.executable}\n" + WRAPPER.format(etc=str(etc), chromium=CHROMIUM))
    launcher.chmod(stat.S_IRWXU)
    return str(launcher)


def browse_in(
    realm: sandbox.Realm, cache: Path, hub: sandbox.Hub, user: sandbox.UnixUser, executable: str, shots: Path
) -> list[dict[str, Any]]:
    """Open the hub in Chromium with ``cache`` as its credential cache;
    wait for JupyterLab; return the browser's cookies."""
    from playwright.sync_api import sync_playwright

    env = {**realm.client_env(), "KRB5CCNAME": f"FILE:{cache}"}
    # A persistent (regular) profile: Chromium never negotiates from an
    # off-the-record context, which browser.new_context() would be
    # (AmbientAuthenticationInPrivateModesEnabled).
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="pamkrb-profile-") as profile:

        def launch() -> Any:
            return persistent_context(
                playwright,
                profile,
                executable=executable,
                args=[f"--auth-server-allowlist={HOST}"],
                env=env,
                viewport={"width": 1400, "height": 900},
            )

        # First start: the challenge is seen (and answered with the form).
        with launch() as context:
            first = context.new_page()
            first.goto(f"{hub.url}/hub/login")
            assert first.locator("#password_input").count() == 1
        with launch() as context:
            page = context.new_page()
            page.set_default_timeout(90_000)
            try:
                page.goto(f"{hub.url}/hub/login?next=/hub/spawn")
                page.wait_for_url(f"{hub.url}/user/{user.name}/lab**", timeout=90_000)
                page.wait_for_selector(".jp-Launcher, .jp-LabShell", timeout=90_000)
                assert page.locator("#password_input").count() == 0
            finally:
                page.screenshot(path=str(shots / "lab.png"))
            return context.cookies()


@pytest.mark.parametrize("delegate", [False, True], ids=["negotiate", "delegate"])
def test_a_signed_in_desktop_lands_in_jupyterlab_without_a_form(
    sso: SSO, tmp_path: Path, request: pytest.FixtureRequest, delegate: bool
) -> None:
    require_root()
    require_chromium()
    realm, user = sso.realm, sso.user
    hub = sso.hub(settings={"Spawner.default_url": "/lab"})
    executable = delegating_chromium(tmp_path) if delegate else CHROMIUM
    as_requests = sso.as_requests()

    cookies = browse_in(realm, sso.cache, hub, user, executable, artifact_dir(request.node.nodeid))

    # The server's cache: the user's, 0600, their principal.
    st = os.lstat(user.default_ccache)
    assert stat.S_ISREG(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.uid, user.gid, 0o600)
    assert realm.klist(user.default_ccache).principal == f"{user.name}@{realm.name}"
    if delegate:
        assert "F" in sso.server_flags()
        assert sso.as_requests() == as_requests
        assert "(delegated)" in hub.log_text()
    else:
        assert "F" not in sso.server_flags()
        assert sso.as_requests() > as_requests

    # A kernel sees it.
    session = hub.session()
    for cookie in cookies:
        session.cookies.set(cookie["name"], cookie["value"], domain=cookie["domain"], path=cookie["path"])
    seen = sandbox.run_in_server(
        session,
        f"{hub.url}/user/{user.name}",
        "import json, os, subprocess\n"
        "out = subprocess.run(['klist', '-f'], capture_output=True, text=True).stdout\n"
        "print(json.dumps({'ccname': os.environ.get('KRB5CCNAME'), 'klist': out}))",
    )
    assert seen["ccname"].removeprefix("FILE:") == str(user.default_ccache)
    assert f"Default principal: {user.name}@{realm.name}" in seen["klist"]
