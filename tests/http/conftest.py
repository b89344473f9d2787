"""Fixtures of the tests over HTTP: a form token, stand-ins for a lock's
holder in the examples, what a refused request must leave as it was. (A held
lock and the door test add-ons are in tests/conftest.py: the browser tests
use them too.)"""

from plone.app.testing import SITE_OWNER_NAME

import examples
import pytest


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
