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

While the lock is held, such a request raises :class:`DoorClosed` (409),
rendered as every :class:`~collective.upgradeapi.errors.UpgradeError` is:
nothing is called, nothing is written, no after-success hook runs. Any other
request pays two ``isinstance`` checks.
"""

from Acquisition import aq_chain
from collective.upgradeapi.errors import BREAK
from collective.upgradeapi.errors import Locked
from collective.upgradeapi.errors import started_by
from collective.upgradeapi.tracking.publishing import side_connection
from plone.base.interfaces import IPloneSiteRoot
from Products.CMFPlone.browser.admin import Upgrade
from Products.CMFPlone.controlpanel.browser.quickinstaller import UpgradeProductsView
from Products.GenericSetup.interfaces import ISetupTool
from zope.component import adapter
from zope.component.hooks import getSite
from ZPublisher.interfaces import IPubAfterTraversal


#: Published methods of the setup tool that run upgrade steps.
SETUP_METHODS = {
    "manage_doUpgrades": "portal_setup's upgrade form (manage_doUpgrades)",
    "upgradeProfile": "portal_setup's upgradeProfile",
}


def plone_site():
    """The Plone site the request was traversed into, or ``None``."""
    site = getSite()
    for item in aq_chain(site) if site is not None else ():
        if IPloneSiteRoot.providedBy(item):
            return item if getattr(item, "_p_jar", None) is not None else None
    return None


def fresh_lock(site):
    """The site's upgrade lock as committed now, or ``None``.

    Read through a connection of its own: the request's connection shows the
    database as it was when the request began, and a lock may have been
    taken since.
    """
    with side_connection(site) as side:
        return side.read(lambda state: None if state is None else state.lock())


class DoorClosed(Locked):
    """One of Plone's other upgrade doors, used while the lock is held: 409."""

    def __init__(self, door, lock):
        super().__init__(
            f"{started_by(lock)} holds this site's upgrade lock (see 'lock'); "
            f"{door} is closed while it runs, so that two upgrades never "
            "overlap. Nothing was done. Follow the run with GET "
            "@upgrade/status and try again when it has ended."
            + (" Its holder looks dead (see 'lock')." if lock.get("stale") else ""),
            hints=(BREAK,) if lock.get("stale") else (),
            lock=lock,
            door=door,
        )


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
