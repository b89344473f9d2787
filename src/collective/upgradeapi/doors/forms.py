"""Plone's classic upgrade forms, routed to the upgrade page and the engine.

Both take the place of Products.CMFPlone's views of the same name (an
override, as ``@upgrade`` takes plone.restapi's), so the links site managers
already follow lead to :mod:`collective.upgradeapi.browser.page`:

- ``@@plone-upgrade`` (Site Setup's "The site configuration is outdated"
  notice, the Zope root's overview, portal_migration's Upgrade tab): a GET
  redirects to ``@@upgrade-controlpanel``. A POST of Plone's own form
  (``form.submitted``, with ``dry_run``) runs Plone's core upgrade through
  the engine and shows the run on the page. Plone's view turned off
  plone.protect for it; here a POST needs plone.protect's authenticator (or
  an ``Authorization`` header), so a cross-site page cannot start it (403).
- ``@@upgrade_products`` (the Add-ons control panel's Upgrade buttons): a POST
  runs the chosen add-ons' upgrade profiles (the profile Plone's add-ons
  panel upgrades) in one run through the engine, with the same check, and
  shows the run on the page. A GET changes nothing: it leads back to the
  Add-ons control panel.

Being subclasses of Plone's views, both are still closed while a run holds
the lock (:mod:`.classic`, 409).
"""

from collective.upgradeapi import api
from collective.upgradeapi.browser.page import _
from collective.upgradeapi.browser.page import page_url
from collective.upgradeapi.browser.page import posted
from collective.upgradeapi.browser.page import show_run
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.services import csrf
from plone.base.utils import get_installer
from Products.CMFPlone.browser.admin import Upgrade
from Products.CMFPlone.controlpanel.browser.quickinstaller import UpgradeProductsView
from Products.statusmessages.interfaces import IStatusMessage


class PloneUpgrade(Upgrade):
    """``@@plone-upgrade``: the upgrade page, or Plone's core upgrade through
    the engine; see the module."""

    def __call__(self):
        site = self.context
        if not (posted(self.request) and self.request.form.get("form.submitted")):
            self.request.response.redirect(page_url(site))
            return ""
        csrf.check(self.request)
        dry_run = bool(self.request.form.get("dry_run"))
        return show_run(
            self, site, lambda: api.upgrade(site, api.Selection(), dry_run=dry_run)
        )


class UpgradeProducts(UpgradeProductsView):
    """``@@upgrade_products``: the Add-ons control panel's Upgrade buttons,
    through the engine; see the module."""

    def __call__(self):
        site = self.context
        panel = f"{site.absolute_url()}/prefs_install_products_form"
        products = self.request.form.get("prefs_reinstallProducts") or ()
        if not posted(self.request) or not products:
            self.request.response.redirect(panel)
            return ""
        csrf.check(self.request)
        installer = get_installer(site, self.request)
        profiles = []
        for product in [products] if isinstance(products, str) else products:
            profile = installer.get_install_profile(product, allow_hidden=True)
            if profile is None:
                missing = _(
                    "There is no add-on ${product}.", mapping={"product": product}
                )
                return self.refuse(panel, missing)
            profiles.append(profile["id"])
        selection = api.Selection(profiles=tuple(profiles))
        try:
            return show_run(self, site, lambda: api.upgrade(site, selection))
        except UpgradeError as error:
            if error.status == 403:
                raise
            return self.refuse(panel, error.message)

    def refuse(self, panel, message):
        """Back to the Add-ons control panel, saying why nothing was done."""
        IStatusMessage(self.request).add(message, type="error")
        self.request.response.redirect(panel, status=303)
        return ""
