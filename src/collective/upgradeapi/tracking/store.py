"""Where the lock, the live status and the history of upgrade runs are kept.

Everything lives in the site, under one annotation, as plain persistent data
(``PersistentMapping`` and ``IOBTree``, holding dicts, strings and numbers):
no class of this package is ever stored, so a site opened without the package
has no broken object. :func:`remove` deletes it all.

An upgrade run itself never writes these records: its transaction can be
doomed or aborted while they are committed through a connection of their own
(:class:`SideConnection`), so every thread, process and ZEO or RelStorage
client sees them at once.

Layout of the annotation (a ``PersistentMapping``)::

    "lock"     -> PersistentMapping {"value": {...} or None}
    "beat"     -> PersistentMapping {"value": {...} or None}
    "progress" -> PersistentMapping {"value": {...} or None}
    "runs"     -> IOBTree {run id: PersistentMapping (one run)}
    "last_id"  -> int

Each slot and each run is a record of its own: concurrent writers of the same
slot get a ``ConflictError``, writers of different slots never do.
"""

from BTrees.IOBTree import IOBTree
from contextlib import contextmanager
from datetime import datetime
from datetime import timezone
from persistent.mapping import PersistentMapping
from ZODB.POSException import ConflictError
from zope.annotation.interfaces import IAnnotations

import time
import transaction


KEY = "collective.upgradeapi.state"
#: Annotations this package writes in a site, all removed by :func:`remove`.
KEYS = (KEY, "collective.upgradeapi.done", "collective.upgradeapi.audit")
SLOTS = ("lock", "beat", "progress")


def now():
    """The current time, as seconds since the epoch."""
    return time.time()


def iso(timestamp):
    """``timestamp`` (seconds since the epoch) as ISO 8601 in UTC, or ``None``."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="seconds")


def _new_data():
    data = PersistentMapping()
    for slot in SLOTS:
        data[slot] = PersistentMapping({"value": None})
    data["runs"] = IOBTree()
    data["last_id"] = 0
    return data


def records(site):
    """The :class:`.state.RunState` of ``site``, or ``None`` if nothing was
    recorded.

    Reads only; use :meth:`SideConnection.transact` to write.
    """
    return records_of(IAnnotations(site))


def records_of(annotations):
    """The :class:`.state.RunState` in ``annotations``, or ``None``."""
    from collective.upgradeapi.tracking.state import RunState

    data = annotations.get(KEY)
    return RunState(data) if data is not None else None


def remove(site):
    """Delete everything this package stored in ``site`` (not committed).

    :returns: the annotation keys that were removed.
    """
    annotations = IAnnotations(site)
    removed = [key for key in KEYS if key in annotations]
    for key in removed:
        del annotations[key]
    return removed


class SideConnection:
    """A connection to the site's database with a transaction manager of its own.

    What it commits is durable and visible to others at once, whatever happens
    to the transaction of the request that uses it.

    :param site: the Plone site (any object of its database will do); or
        ``db`` and ``oid``, the site's database and object id.
    """

    def __init__(self, site=None, db=None, oid=None):
        self.oid = site._p_oid if site is not None else oid
        self.db = site._p_jar.db() if site is not None else db
        self.tm = transaction.TransactionManager()
        self.connection = self.db.open(transaction_manager=self.tm)
        self._adapted = None

    def close(self):
        self.tm.abort()
        self.connection.close()

    def transact(self, change, attempts=5):
        """Call ``change(records)`` in a fresh transaction and commit it.

        On a write conflict the change is called again on the newest state,
        so it must decide from what it reads.

        :param change: a callable taking the site's :class:`.state.RunState`.
        :returns: what ``change`` returned.
        :raises ConflictError: when every attempt conflicted.
        """
        for attempt in range(1, attempts + 1):
            self.tm.begin()
            try:
                result = change(self._records())
                self.tm.commit()
            except ConflictError:
                self.tm.abort()
                if attempt == attempts:
                    raise
                time.sleep(0.05 * attempt)
                continue
            except BaseException:
                self.tm.abort()
                raise
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, look):
        """Call ``look(records_or_None)`` on the newest committed state."""
        self.tm.begin()
        try:
            return look(records_of(self._annotations()))
        finally:
            self.tm.abort()

    def _annotations(self):
        # The adapter reads the site's annotations anew at each call; only
        # its lookup is saved.
        if self._adapted is None:
            self._adapted = IAnnotations(self.connection.get(self.oid))
        return self._adapted

    def _records(self):
        from collective.upgradeapi.tracking.state import RunState

        annotations = self._annotations()
        data = annotations.get(KEY)
        if data is None:
            data = annotations[KEY] = _new_data()
        return RunState(data, self.version)

    def version(self, profile_id):
        """The version recorded for ``profile_id`` in this connection's site."""
        setup = getattr(self.connection.get(self.oid), "portal_setup", None)
        if setup is None:
            return None
        version = setup.getLastVersionForProfile(profile_id)
        return ".".join(version) if isinstance(version, tuple) else version


@contextmanager
def side_connection(site):
    """A :class:`SideConnection` for ``site``, closed afterwards."""
    side = SideConnection(site)
    try:
        yield side
    finally:
        side.close()
