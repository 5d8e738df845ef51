"""Headless Chromium, driven by Playwright, as the browser tests use it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip the test (a failure under CI=1) where Chromium is not installed:
    called before a test's setup, so that none is wasted."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched Playwright ``Browser``, closed on exit."""
    require_chromium()
    # Imported here: collecting the tests must not need Playwright.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def persistent_context(
    playwright: Any,
    profile: str,
    *,
    executable: str = CHROMIUM,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    **options: Any,
) -> Iterator[Any]:
    """A Playwright ``BrowserContext`` on the regular profile in ``profile``
    (a test that starts Chromium twice on it sees what the first start
    recorded), launched from ``executable`` with ``args`` after
    CHROMIUM_ARGS and ``env``; closed on exit. ``options`` go to
    ``launch_persistent_context``."""
    require_chromium()
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=executable, args=[*CHROMIUM_ARGS, *args], env=env, **options
    )
    try:
        yield context
    finally:
        context.close()


def browser_cookies(session: Any) -> list[dict[str, str]]:
    """A ``requests`` session's cookies (a login made with ``form_login``),
    for ``BrowserContext.add_cookies``."""
    return [{"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": c.path or "/"} for c in session.cookies]
