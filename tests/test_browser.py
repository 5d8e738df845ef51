"""A data scientist's day, in headless Chromium: log in through the real form,
open, edit and save notebooks in Notebook 7 and in JupyterLab 4, start a
kernel, and look at the Kerberos status — while tickets live 90 seconds.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from chromium import chromium

import sandbox
from conftest import SHORT_LIFETIME, artifact_dir, assert_user_owned_cache, password_user, private_realm, require_root

LIFETIME = SHORT_LIFETIME
ALWAYS_RENEW = 120


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_root()
    with chromium() as browser:
        yield browser


NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "source": "",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
    ],
    "metadata": {
        "kernelspec": {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


class Session:
    """A browser page logged in to the hub as a user."""

    def __init__(self, browser, hub: sandbox.Hub, user: sandbox.UnixUser):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.hub, self.user = hub, user
        self.base = f"{hub.url}/user/{user.name}"
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def log_in(self) -> None:
        page = self.page
        page.goto(f"{self.hub.url}/hub/login")
        page.fill("#username_input", self.user.name)
        page.fill("#password_input", self.user.password)
        page.click("#login_submit")
        page.wait_for_url(f"**/user/{self.user.name}/**", timeout=90_000)

    def xsrf(self) -> str:
        for cookie in self.context.cookies():
            if cookie["name"] == "_xsrf" and cookie["path"].startswith(f"/user/{self.user.name}"):
                return cookie["value"]
        return ""

    def put_notebook(self, path: str) -> None:
        response = self.context.request.put(
            f"{self.base}/api/contents/{path}",
            data=json.dumps({"type": "notebook", "content": NOTEBOOK}),
            headers={"X-XSRFToken": self.xsrf(), "Content-Type": "application/json"},
        )
        assert response.status in (200, 201), response.text()

    def notebook_source(self, path: str) -> str:
        response = self.context.request.get(f"{self.base}/api/contents/{path}")
        assert response.status == 200
        return "".join(cell["source"] for cell in response.json()["content"]["cells"])

    def status(self) -> dict:
        response = self.context.request.get(f"{self.base}/pamkrb/api/status")
        assert response.status == 200
        return response.json()

    def edit_first_cell_and_save(self, text: str, path: str) -> None:
        page = self.page
        editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        editor.click()
        page.keyboard.type(text)
        with page.expect_response(lambda r: r.request.method == "PUT" and f"/api/contents/{path}" in r.url) as saved:
            page.keyboard.press("Control+s")
        assert saved.value.status == 200

    def close(self) -> None:
        self.context.close()


@contextlib.contextmanager
def logged_in_session(browser, hub: sandbox.Hub, user: sandbox.UnixUser) -> Iterator[Session]:
    """A ``Session`` logged in through the form; closed however the test ends."""
    session = Session(browser, hub, user)
    try:
        session.log_in()
        yield session
    finally:
        session.close()


def wait_for_count(session: Session, key: str, above: int, what: str) -> dict:
    def reached():
        status = session.status()
        return status if status["triggers"].get(key, 0) > above else None

    return sandbox.wait_until(reached, timeout=30, interval=0.25, message=what)


def test_notebook7_open_edit_save_and_kernel(browser, hub_factory, short_realm, short_user, request):
    hub = hub_factory({"PAMKerberosAuthenticator.refresh_margin": ALWAYS_RENEW}, realm=short_realm)
    with logged_in_session(browser, hub, short_user) as session:
        session.put_notebook("day.ipynb")
        before = session.status()

        session.page.goto(f"{session.base}/notebooks/day.ipynb")
        session.page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        opened = wait_for_count(session, "open", before["triggers"].get("open", 0), "open")
        wait_for_count(session, "kernel", before["triggers"].get("kernel", 0), "kernel")

        session.edit_first_cell_and_save("x = 41 + 1", "day.ipynb")
        assert "x = 41 + 1" in session.notebook_source("day.ipynb")
        saved = wait_for_count(session, "save", opened["triggers"].get("save", 0), "save")

        assert saved["renewals"] > before["renewals"]
        # The margin is above the lifetime, so even a fresh ticket counts as
        # expiring; what matters is that renewal works and reports no error.
        assert saved["state"] == "expiring"
        assert saved["last_error"] is None
        assert_user_owned_cache(short_user)
        assert short_realm.klist_valid(short_user.default_ccache)
        session.page.screenshot(path=str(artifact_dir(request.node.nodeid) / "notebook7.png"))
        assert not [e for e in session.errors if "pamkrb" in e], session.errors


def test_jupyterlab_opens_through_contents_only_and_saves(browser, hub_factory, short_realm, short_user, request):
    hub = hub_factory({"PAMKerberosAuthenticator.refresh_margin": ALWAYS_RENEW}, realm=short_realm)
    with logged_in_session(browser, hub, short_user) as session:
        session.put_notebook("lab.ipynb")
        page = session.page
        page.goto(f"{session.base}/lab")
        page.locator(".jp-DirListing-item[title*='lab.ipynb']").first.wait_for()
        before = session.status()
        session.requests.clear()

        page.locator(".jp-DirListing-item[title*='lab.ipynb']").first.dblclick()
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        opened = wait_for_count(session, "open", before["triggers"].get("open", 0), "open")
        # JupyterLab sent no page request for the notebook: the contents GET
        # alone triggered the check.
        assert not [r for r in session.requests if r.startswith("GET") and "/lab/tree/" in r]
        assert any("/api/contents/lab.ipynb" in r for r in session.requests)

        session.edit_first_cell_and_save("y = 6 * 7", "lab.ipynb")
        assert "y = 6 * 7" in session.notebook_source("lab.ipynb")
        wait_for_count(session, "save", opened["triggers"].get("save", 0), "save")
        status = session.status()
        assert status["renewals"] > before["renewals"]
        assert_user_owned_cache(short_user)

        # The status-bar item from the prebuilt labextension.
        item = page.locator("#pamkrb-status")
        item.wait_for()
        assert item.inner_text().startswith("Kerberos: ")
        assert item.get_attribute("data-pamkrb-state") == status["state"]
        page.screenshot(path=str(artifact_dir(request.node.nodeid) / "jupyterlab.png"))
        assert not [e for e in session.errors if "pamkrb" in e], session.errors


def test_status_view_screenshot(browser, hub_factory, short_realm, short_user, request):
    hub = hub_factory({"PAMKerberosAuthenticator.refresh_margin": 10}, realm=short_realm)
    with logged_in_session(browser, hub, short_user) as session:
        page = session.page
        page.goto(f"{session.base}/pamkrb/status")
        badge = page.locator("#pamkrb-state")
        assert badge.inner_text() == "Valid"
        assert short_user.name in page.content()
        page.screenshot(path=str(artifact_dir(request.node.nodeid) / "status-view.png"))


def test_status_bar_of_a_namespaced_server_says_renewed_by_hub(
    browser, namespaced_hub_factory, broker_realm, broker_user, request
):
    """A server that shares no files with the hub gets its ticket from the
    broker, and JupyterLab's status bar says who renews it."""
    hub = namespaced_hub_factory(
        {"PAMKerberosAuthenticator.ticket_broker": True, "PAMKerberosAuthenticator.refresh_margin": 30},
        realm=broker_realm,
    )
    with logged_in_session(browser, hub, broker_user) as session:
        page = session.page
        page.goto(f"{session.base}/lab")
        item = page.locator("#pamkrb-status")
        item.wait_for()
        # The item polls every 30 s; the first answer may predate the delivery.
        sandbox.wait_until(
            lambda: "renewed by hub" in item.inner_text(), timeout=45, interval=0.5, message="'renewed by hub'"
        )
        assert item.inner_text().startswith("Kerberos: valid")
        assert session.status()["renewed_by"] == "hub"
        page.screenshot(path=str(artifact_dir(request.node.nodeid) / "renewed-by-hub.png"))


def _sign_in_from_jupyterlabs_status_bar(page) -> None:
    # The page was open all along: the item's label changes by itself.
    item = page.locator("#pamkrb-status")
    sandbox.wait_until(lambda: "sign in again" in item.inner_text(), timeout=45, interval=0.5, message="label")
    item.click()


def _sign_in_from_notebook7s_help_menu(page) -> None:
    # Notebook 7's file browser has no status bar: the Help menu is the way.
    page.get_by_role("menuitem", name="Help", exact=True).click()
    page.get_by_role("menuitem", name="Sign in to Kerberos again…").click()


@pytest.mark.parametrize(
    ("front_end", "open_sign_in"),
    [("/lab", _sign_in_from_jupyterlabs_status_bar), ("/tree", _sign_in_from_notebook7s_help_menu)],
    ids=["jupyterlab-status-bar", "notebook7-help-menu"],
)
def test_sign_in_again_without_a_restart(browser, hub_factory, bare_user, request, front_end, open_sign_in):
    """A password user whose ticket ran out signs in again from the browser
    (JupyterLab's status bar, Notebook 7's Help menu): the dialog gets a new
    ticket, the server is not restarted."""
    user = bare_user
    with private_realm("SIGNIN.TEST", max_life=60, max_renewable_life=60) as realm:
        password_user(realm, user)
        hub = hub_factory(
            {"PAMKerberosAuthenticator.credential_source": "password", "PAMKerberosAuthenticator.refresh_margin": 20},
            realm=realm,
        )
        with logged_in_session(browser, hub, user) as session:
            server_pids = sandbox.singleuser_pids(user.uid)
            page = session.page
            page.goto(f"{session.base}{front_end}")
            page.get_by_role("menuitem", name="Help", exact=True).wait_for()
            # Renewable for 60 s only: without activity it runs out.
            sandbox.wait_until(
                lambda: session.status()["state"] == "login_required", timeout=150, interval=2, message="sign-in"
            )
            open_sign_in(page)
            page.locator("#pamkrb-signin-password").fill(user.password)
            page.get_by_role("button", name="Sign in", exact=True).click()
            sandbox.wait_until(
                lambda: session.status()["state"] == "valid", timeout=30, interval=0.5, message="a new ticket"
            )
            assert realm.klist_valid(user.default_ccache)
            assert sandbox.singleuser_pids(user.uid) == server_pids, "the server was restarted"
            page.screenshot(path=str(artifact_dir(request.node.nodeid) / "signed-in.png"))
