"""Plone's classic upgrade forms refuse while a run holds the site's lock.

One subscriber to Zope's ``IPubAfterTraversal`` looks at what the request is
about to call (``request["PUBLISHED"]``), before it is called:

======================================================  =====================
door                                                    refused when
======================================================  =====================
``@@plone-upgrade`` (Plone's upgrade form, routed       ``form.submitted``
through the engine by :mod:`.forms`)
``@@upgrade_products`` (the classic add-ons control     ``prefs_reinstallProducts``
panel's upgrade button, routed by :mod:`.forms`)
``portal_setup/manage_doUpgrades`` (the ZMI's           always
Upgrades tab)
``portal_setup/upgradeProfile`` (published method)      always
======================================================  =====================

While the lock is held, such a request raises :class:`.refusals.DoorClosed`
(409): nothing is called, nothing is written. Any other request pays two
``isinstance`` checks.
"""

from collective.upgradeapi.doors.refusals import DoorClosed
from collective.upgradeapi.doors.refusals import fresh_lock
from collective.upgradeapi.doors.refusals import plone_site
from Products.CMFPlone.browser.admin import Upgrade
from Products.CMFPlone.controlpanel.browser.quickinstaller import UpgradeProductsView
from Products.GenericSetup.interfaces import ISetupTool
from zope.component import adapter
from ZPublisher.interfaces import IPubAfterTraversal


#: Published methods of the setup tool that run upgrade steps.
SETUP_METHODS = {
    "manage_doUpgrades": "portal_setup's upgrade form (manage_doUpgrades)",
    "upgradeProfile": "portal_setup's upgradeProfile",
}


def door(published, request):
    """The name of the upgrade door ``published`` is, or ``None``."""
    if isinstance(published, Upgrade):
        if request.form.get("form.submitted"):
            return "Plone's upgrade form (@@plone-upgrade)"
        return None
    if isinstance(published, UpgradeProductsView):
        if request.get("prefs_reinstallProducts"):
            return "the add-ons control panel's upgrade (@@upgrade_products)"
        return None
    owner = getattr(published, "__self__", None)
    name = getattr(published, "__name__", None)
    if name in SETUP_METHODS and ISetupTool.providedBy(owner):
        return SETUP_METHODS[name]
    return None


@adapter(IPubAfterTraversal)
def refuse_while_locked(event):
    """Refuse a classic upgrade door (409) while the site's lock is held."""
    request = event.request
    name = door(request.get("PUBLISHED"), request)
    if name is None:
        return
    site = plone_site()
    if site is None:
        return
    lock = fresh_lock(site)
    if lock is not None:
        raise DoorClosed(name, lock)
