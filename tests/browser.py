"""Headless Chromium for the browser suites: the browser, screenshots, the live site and logging in.

Playwright's sync API drives Debian's Chromium (/usr/bin/chromium; Playwright's
own browser download does not work here) against pytest-django's live server.
That API runs an event loop on the test's thread, where Django refuses
database calls, so a test prepares and checks the database outside its
`with chromium() as page:` block and only drives the browser inside it.

Screenshots go to $SCREENSHOT_DIR, else to the test's tmp_path, one folder
per test; each path is printed as it is saved.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.services import missing

CHROMIUM = Path("/usr/bin/chromium")
# A fresh profile per browser, and nothing that reaches out on its own: this
# machine's network is closed, and Chromium's background connections would be refused.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_site(settings, live_server):
    """The live server as the site: links point at it, and cookies work over its plain HTTP."""
    settings.SITE_URL = live_server.url
    # Secure-only cookies would never come back over plain HTTP.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = settings.SECURE_SSL_REDIRECT = False
    return live_server


@pytest.fixture
def chromium(tmp_path) -> Callable:
    """Open a headless Chromium with a fresh profile, as `with chromium() as page:`."""
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install -r requirements-dev.txt)")
    profiles = itertools.count(1)

    @contextmanager
    def open_page() -> Iterator:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                tmp_path / f"chromium-profile-{next(profiles)}",
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_FLAGS,
            )
            try:
                page = context.new_page()
                page.set_default_timeout(15_000)
                yield page
            finally:
                context.close()

    return open_page


@pytest.fixture
def screenshot(request, tmp_path, capsys) -> Callable:
    """Save a full-page PNG of the page under a name, print where, and check the file is a real PNG."""
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path).resolve() / request.node.name
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        with capsys.disabled():
            print(f"\nscreenshot: {path}")
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, f"{path} is not a screenshot"
        return path

    return take


def log_in(page, username: str, password: str) -> None:
    """Fill in and send the login form (the admin's, or the approvers' own), which the page must be showing."""
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()
