"""Fixtures: the Plone layers, HTTP sessions, database checks, HTTP examples."""

from collective.upgradeapi.testing import FUNCTIONAL_TESTING
from collective.upgradeapi.testing import INTEGRATION_TESTING
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing import steps
from concurrent.futures import ThreadPoolExecutor
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from pytest_plone import fixtures_factory
from pytest_plone.fixtures.requests import RelativeSession

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

CORE = "Products.CMFPlone:plone"


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
