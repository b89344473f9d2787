"""What a closed door answers: 409 while the lock is held, 503 while writes
are held off.

Both are raised from a publication event (so Zope aborts the request's
transaction and no after-success hook runs) and rendered as every
:class:`~collective.upgradeapi.errors.UpgradeError` is
(:mod:`collective.upgradeapi.services.errors`): JSON for REST requests, a
short HTML page for the others.
"""

from Acquisition import aq_chain
from collective.upgradeapi.errors import BREAK
from collective.upgradeapi.errors import Locked
from collective.upgradeapi.errors import started_by
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.tracking.publishing import side_connection
from plone.base.interfaces import IPloneSiteRoot
from zope.component.hooks import getSite


#: Seconds a held writer is asked to wait before it tries again.
RETRY_AFTER = 30


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


class WriteHeld(UpgradeError):
    """A request that would write, while a real run holds writes (see
    :mod:`.hold`): 503 with ``Retry-After``."""

    status = 503
    error_type = "WriteHeld"

    def __init__(self, lock, retry_after=RETRY_AFTER):
        held = lock.get("writes_held") or {}
        until = (
            "while it runs again a part of its work that met a write conflict"
            if held.get("holding")
            else "until it ends (hold_writes)"
        )
        super().__init__(
            f"{started_by(lock)} is running on this site, and writes are held off "
            f"{until}. Nothing of this "
            f"request was saved. Try again in {retry_after} seconds; GET "
            "@upgrade/status shows the run's progress.",
            lock=lock,
            retry_after=retry_after,
        )
        self.headers = {"Retry-After": str(retry_after)}
