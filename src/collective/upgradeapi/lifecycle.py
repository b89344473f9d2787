"""What a Zope process does for upgrade runs when it starts.

**Start.** When Zope has opened its database (``IDatabaseOpenedWithRoot``,
which ``runwsgi``, ``zconsole`` and ``Zope2.app()`` fire once ZCML is loaded),
:func:`clear_dead_locks` looks at every Plone site at the root of the
database: a lock whose holder is a process of this host that is gone (killed,
crashed, restarted) is removed, and its run recorded as ``abandoned`` with the
step it was in and its last sign of life. A holder on another host is left
alone: it goes stale after its heartbeat timeout. (plone.testing's layers
start Zope before they load ZCML, so this subscriber does not run there;
tests call :func:`clear_dead_locks`.)

Nothing else of this package runs in a Zope process while no upgrade runs:
a run handles signals only while it runs, and only in the main thread
(:func:`.tracking.holder.handle_signals`).
"""

from collective.upgradeapi import api
from collective.upgradeapi.tracking.holder import PROCESS_GONE
from collective.upgradeapi.tracking.publishing import side_connection

import logging
import transaction


logger = logging.getLogger("collective.upgradeapi")


def database_opened(event):
    """Subscriber of ``IDatabaseOpenedWithRoot``: clear dead predecessors'
    locks. Never raises."""
    try:
        clear_dead_locks(event.database)
    except Exception:
        logger.exception("Could not look for upgrade locks of dead processes.")


def plone_sites(app):
    """The Plone sites at the root of the Zope application ``app``; nothing
    else there (mount points, other objects) is loaded."""
    from plone.base.interfaces import IPloneSiteRoot

    sites = app.objectValues("Plone Site")
    return [site for site in sites if IPloneSiteRoot.providedBy(site)]


def clear_dead_locks(db):
    """Remove the locks of every Plone site at the root of ``db`` whose
    holder is a process of this host that is gone; their runs are recorded as
    abandoned.

    :returns: ``{site id: the lock as it was}`` for each lock removed.
    """
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        app = connection.root().get("Application")
        sites = plone_sites(app) if app is not None else []
        cleared = {site.getId(): clear_dead_lock(site) for site in sites}
    finally:
        manager.abort()
        connection.close()
    return {site_id: lock for site_id, lock in cleared.items() if lock is not None}


def clear_dead_lock(site):
    """Remove ``site``'s lock if its holder is a process of this host that is
    gone; return the lock as it was, or ``None``."""
    lock = api.lock_info(site)  # as committed when this connection opened
    if lock is None or lock["stale_reason"] != PROCESS_GONE:
        return None
    with side_connection(site) as side:
        shown = side.transact(lambda state: state.clear_dead())
    if shown is not None:
        holder = shown["holder"] or {}
        logger.warning(
            "Removed the upgrade lock of site %s: its holder, process %s on this "
            "host (%s), is gone. Its run %s is recorded as abandoned.",
            site.getId(),
            holder.get("pid"),
            holder.get("host"),
            shown["run_id"],
        )
    return shown
