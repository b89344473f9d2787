"""Fixtures: the Plone layers, HTTP sessions, database checks, HTTP examples."""

from collective.upgradeapi.testing import FUNCTIONAL_TESTING
from collective.upgradeapi.testing import INTEGRATION_TESTING
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing import steps
from collective.upgradeapi.testing.status import at_step
from collective.upgradeapi.testing.status import wait_for_status
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from pytest_plone import fixtures_factory
from pytest_plone.fixtures.requests import RelativeSession

import collective.upgradeapi.testing
import examples
import pytest
import transaction


pytest_plugins = ["pytest_plone"]

globals().update(
    fixtures_factory(
        (
            (INTEGRATION_TESTING, "integration"),
            (FUNCTIONAL_TESTING, "functional"),
        )
    )
)

SLOW = "collective.upgradeapi.testing:slow"


@pytest.fixture
def site(functional_portal):
    """The functional test site; :func:`sync` it to see what HTTP committed."""
    return functional_portal


@pytest.fixture
def sync(site):
    """Return a function that makes the test's connection see the latest commits."""

    def sync():
        transaction.abort()
        site._p_jar.sync()

    return sync


@pytest.fixture
def rewind(site):
    """Record profiles at older versions, committed, so that steps are pending.

    ``rewind({"Products.CMFPlone:plone": "6100"})``
    """

    def rewind(versions):
        setup = site.portal_setup
        for profile_id, version in versions.items():
            setup.setLastVersionForProfile(profile_id, version)
        transaction.commit()

    return rewind


@pytest.fixture
def snapshot(site, sync):
    """Return a function that reads what the tests compare before and after.

    The recorded version of every profile, the markers the test steps leave,
    and the record of steps run on their own.
    """
    from collective.upgradeapi.engine import done
    from zope.annotation.interfaces import IAnnotations

    def snapshot():
        sync()
        setup = site.portal_setup
        versions = {
            profile_id: setup.getLastVersionForProfile(profile_id)
            for profile_id in sorted(setup.listProfilesWithUpgrades())
        }
        return {
            "versions": versions,
            "markers": steps.markers(site),
            "done": dict(IAnnotations(site).get(done.KEY, {})),
        }

    return snapshot


def _session(site, auth=None):
    session = RelativeSession(site.absolute_url())
    session.headers.update({"Accept": "application/json"})
    if auth is not None:
        session.auth = auth
    return session


@pytest.fixture
def api(site):
    """A requests session for the site root, logged in as the site owner."""
    session = _session(site, (SITE_OWNER_NAME, SITE_OWNER_PASSWORD))
    yield session
    session.close()


@pytest.fixture
def anon_api(site):
    """A requests session for the site root, not logged in."""
    session = _session(site)
    yield session
    session.close()


@pytest.fixture
def session_for(site):
    """Return a function making a session logged in as (user, password)."""
    sessions = []

    def session_for(user, password):
        session = _session(site, (user, password))
        sessions.append(session)
        return session

    yield session_for
    for session in sessions:
        session.close()


@pytest.fixture
def example():
    """Return ``example(name, response)``: check and write an HTTP example.

    See :mod:`examples` for the normalisation and when files are rewritten.
    """
    return examples.check_example


# -- runs that wait: gates, runs in the background, a held lock -----------------


@pytest.fixture
def gates(tmp_path, monkeypatch):
    """A directory of gates: the slow test steps wait until theirs is opened."""
    monkeypatch.setenv(slow.VARIABLE, str(tmp_path))
    return tmp_path


@pytest.fixture
def background(session_for):
    """Return ``post(json)``: POST @upgrade in a thread; returns a future."""
    pool = ThreadPoolExecutor(max_workers=2)

    def post(json):
        session = session_for(SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
        return pool.submit(session.post, "/@upgrade", json=json, timeout=120)

    yield post
    pool.shutdown(wait=True)


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


# -- add-ons that plone.restapi's @addons and Plone's Add-ons control panel know

#: Two add-ons (one profile each, registered by the ``addons`` fixture): one
#: whose steps work, one whose second step fails.
GOOD = "collective.upgradeapi.doortest"
BAD = "collective.upgradeapi.doorbroken"
#: A profile directory whose metadata.xml says 3002.
PROFILE_PATH = str(
    Path(collective.upgradeapi.testing.__file__).parent / "profiles/broken"
)


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
