"""Fixtures of the browser tests: Debian's Chromium driven by Playwright,
logged in to the functional test site with Plone's login cookie.

Chromium is installed by ``scripts/ensure-chromium.sh`` (``make test``);
nothing is downloaded from a browser vendor (``playwright install`` is never
run): Playwright launches ``/usr/bin/chromium``. Without it the tests skip
with the reason, except under ``CI=true``, where they fail.

Screenshots for the docs (``docs/screenshots/``) are written with
``UPDATE_EXAMPLES=1``, like the HTTP examples.
"""

from collective.upgradeapi.testing.status import log_in
from pathlib import Path

import os
import pytest
import requests


# Before the test layer loads the ZCML (at its first test, after every
# conftest was read): zope.i18n compiles the .po catalogues to .mo files, as
# in a Zope instance whose environment sets it.
os.environ.setdefault("zope_i18n_compile_mo_files", "true")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
#: How long Playwright waits for what a test expects (ms): a bound on a
#: failing test only, on a loaded machine.
TIMEOUT = 30_000


def _unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} CI=true: the browser tests must run here.")
    pytest.skip(f"{reason} Run scripts/ensure-chromium.sh to install it.")


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, launched by Playwright."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (Debian's chromium package).")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS, headless=True
        )
        yield browser
        browser.close()


def login_cookie(site):
    """Plone's ``__ac`` cookie of the site owner, from the login form."""
    with requests.Session() as session:
        return log_in(session, site.absolute_url())


@pytest.fixture
def open_page(browser, site):
    """Return ``open_page(javascript=True, locale="en-US")``: a new tab of a
    logged-in browser context."""
    contexts = []
    cookie = login_cookie(site)

    def open_page(javascript=True, locale="en-US"):
        context = browser.new_context(
            java_script_enabled=javascript,
            locale=locale,
            viewport={"width": 1200, "height": 900},
        )
        context.set_default_timeout(TIMEOUT)
        context.add_cookies(
            [{"name": "__ac", "value": cookie, "url": site.absolute_url()}]
        )
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page):
    """A logged-in tab with JavaScript."""
    return open_page()


@pytest.fixture
def upgrades_url(site):
    return f"{site.absolute_url()}/@@upgrade-controlpanel"


@pytest.fixture
def screenshot():
    """Return ``screenshot(page, name)``: with ``UPDATE_EXAMPLES=1``, save
    the page as ``docs/screenshots/<name>.png`` for the docs."""

    def screenshot(page, name):
        if os.environ.get("UPDATE_EXAMPLES") == "1":
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return screenshot
