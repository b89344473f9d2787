"""Test layers: a Plone site with this add-on and test profiles with real steps.

- ``INTEGRATION_TESTING``: in-process, one transaction rolled back per test.
- ``FUNCTIONAL_TESTING``: a real WSGI server (``plone.testing``) on
  ``ZSERVER_HOST:ZSERVER_PORT`` (default ``localhost:55001``); each test gets
  its own stacked database, so commits made over HTTP vanish afterwards.
"""

from plone.app.testing import applyProfile
from plone.app.testing import FunctionalTesting
from plone.app.testing import IntegrationTesting
from plone.app.testing import PLONE_FIXTURE
from plone.app.testing import PloneSandboxLayer
from plone.testing.zope import installProduct
from plone.testing.zope import WSGI_SERVER_FIXTURE
from zope.configuration import xmlconfig


TEST_PROFILES = (
    "collective.upgradeapi.testing:base",
    "collective.upgradeapi.testing:dependent",
    "collective.upgradeapi.testing:broken",
    "collective.upgradeapi.testing:committing",
    "collective.upgradeapi.testing:aborting",
    "collective.upgradeapi.testing:slow",
    "collective.upgradeapi.testing:flaky",
    "collective.upgradeapi.testing:patterns",
    "collective.upgradeapi.testing:purging",
    "collective.upgradeapi.testing:slowcommit",
)


class StockLayer(PloneSandboxLayer):
    """A stock Plone site with plone.restapi and this add-on, loaded as in Zope."""

    defaultBases = (PLONE_FIXTURE,)

    def setUpZope(self, app, configurationContext):
        import collective.upgradeapi
        import plone.app.caching
        import plone.restapi
        import Products.SiteErrorLog

        # As in a Plone site: the error log (installed in the Zope root as
        # Zope does at startup) with its subscriber to failed requests, and
        # plone.app.caching (purging stays off unless a test turns it on).
        installProduct(app, "Products.SiteErrorLog")
        self.loadZCML(package=Products.SiteErrorLog)
        self.loadZCML(package=plone.app.caching)
        self.loadZCML(package=plone.restapi)
        self.loadZCML(package=collective.upgradeapi)
        # As plone.autoinclude does in Zope: our @upgrade overrides restapi's.
        xmlconfig.includeOverrides(
            configurationContext, "overrides.zcml", package=collective.upgradeapi
        )
        configurationContext.execute_actions()

    def setUpPloneSite(self, portal):
        applyProfile(portal, "plone.restapi:default")


class UpgradeAPILayer(StockLayer):
    """The stock site plus the test-only profiles with real upgrade steps.

    plone.volto's code is loaded as on a Volto site (its profile is installed
    only by the parity tests): its steps are the real case of a metadata.xml
    that lags its steps.
    """

    def setUpZope(self, app, configurationContext):
        import collective.upgradeapi.testing
        import plone.volto

        super().setUpZope(app, configurationContext)
        self.loadZCML(package=plone.volto)
        self.loadZCML(package=collective.upgradeapi.testing)

    def setUpPloneSite(self, portal):
        super().setUpPloneSite(portal)
        for profile_id in TEST_PROFILES:
            applyProfile(portal, profile_id)


FIXTURE = UpgradeAPILayer()

INTEGRATION_TESTING = IntegrationTesting(
    bases=(FIXTURE,), name="CollectiveUpgradeAPI:Integration"
)
FUNCTIONAL_TESTING = FunctionalTesting(
    bases=(FIXTURE, WSGI_SERVER_FIXTURE), name="CollectiveUpgradeAPI:Functional"
)
