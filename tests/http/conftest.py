"""Fixtures of the tests over HTTP: a held lock, a form token, the door
test add-ons, stand-ins for a lock's holder in the examples."""

from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing import steps
from collective.upgradeapi.testing.status import at_step
from collective.upgradeapi.testing.status import wait_for_status
from pathlib import Path
from plone.app.testing import SITE_OWNER_NAME

import collective.upgradeapi.testing
import examples
import pytest


SLOW = "collective.upgradeapi.testing:slow"
#: Two add-ons plone.restapi's @addons knows (one profile each, registered by
#: the ``addons`` fixture): one whose steps work, one whose second step fails.
GOOD = "collective.upgradeapi.doortest"
BAD = "collective.upgradeapi.doorbroken"
#: A profile directory whose metadata.xml says 3002.
PROFILE_PATH = str(
    Path(collective.upgradeapi.testing.__file__).parent / "profiles/broken"
)


@pytest.fixture
def held(api, background, rewind, gates):
    """Return ``hold(dry_run=False)``: a run of the slow profile that holds
    the lock, waiting at its first step until the test ends.

    Afterwards the gates are opened and the run must have succeeded.
    """
    futures = []

    def hold(dry_run=False):
        rewind({SLOW: "5000"})
        futures.append(background({"profiles": [SLOW], "dry_run": dry_run}))
        wait_for_status(api, at_step("Slow: first step"))

    yield hold
    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)
    for future in futures:
        response = future.result(timeout=60)
        assert response.status_code == 200, response.text


@pytest.fixture
def stand_ins(monkeypatch):
    """A lock's holder changes from process to process: fixed in examples."""
    monkeypatch.setitem(examples.STAND_INS, "host", "zope-1.example.org")
    monkeypatch.setitem(examples.STAND_INS, "pid", 4242)


@pytest.fixture
def token(site):
    """A valid plone.protect token of the site owner (Plone's forms send one)."""
    from plone.protect.authenticator import createToken
    from plone.testing import zope
    from zope.component.hooks import getSite
    from zope.component.hooks import setSite

    before = getSite()
    setSite(site)
    zope.login(site.aq_parent["acl_users"], SITE_OWNER_NAME)
    try:
        return createToken()
    finally:
        zope.logout()
        setSite(before)


def _register_addon(product, handlers):
    """Register ``product:default`` (3000 -> 3001 -> 3002) with ``handlers``."""
    from Products.GenericSetup import EXTENSION
    from Products.GenericSetup.registry import _profile_registry
    from Products.GenericSetup.upgrade import _registerUpgradeStep
    from Products.GenericSetup.upgrade import UpgradeStep

    profile_id = f"{product}:default"
    _profile_registry.registerProfile(
        "default",
        f"Door test add-on {product}",
        "",
        PROFILE_PATH,
        product=product,
        profile_type=EXTENSION,
    )
    for source, handler in zip(("3000", "3001"), handlers, strict=True):
        dest = str(int(source) + 1)
        step = UpgradeStep(
            f"{product}: {source} to {dest}", profile_id, source, dest, "", handler
        )
        _registerUpgradeStep(step)
    return profile_id


@pytest.fixture
def addons(site, rewind):
    """Two add-ons plone.restapi's @addons knows, registered and installed at
    version 3000: ``collective.upgradeapi.doortest`` (steps that work) and
    ``collective.upgradeapi.doorbroken`` (its second step fails)."""
    from Products.GenericSetup.registry import _profile_registry
    from Products.GenericSetup.upgrade import _upgrade_registry

    _register_addon(GOOD, (steps.marker("good-3001"), steps.marker("good-3002")))
    _register_addon(BAD, (steps.marker("bad-3001"), steps.broken_3002))
    rewind({f"{GOOD}:default": "3000", f"{BAD}:default": "3000"})
    yield
    for product in (GOOD, BAD):
        _profile_registry.unregisterProfile("default", product)
        del _upgrade_registry._registry[f"{product}:default"]


@pytest.fixture
def database(api, site, snapshot):
    """Return ``read()``: what a refused request leaves as it was, read as
    committed: the profiles (``snapshot``), the ids at the site root, the
    upgrade lock and the number of runs in the history."""

    def read():
        state = snapshot()
        state["root"] = sorted(site.objectIds())
        state["lock"] = api.get("/@upgrade/lock").json()["lock"]
        state["runs"] = api.get("/@upgrade/history").json()["items_total"]
        return state

    return read
