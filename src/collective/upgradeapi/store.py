"""Where the lock, the live status and the history of upgrade runs are kept.

Everything lives in the site (an annotation holding a :class:`Records`), in
objects that an upgrade run itself never writes: the run's transaction can be
doomed or aborted while these records are committed through a connection of
their own (:class:`SideConnection`), so every thread, process and ZEO or
RelStorage client sees them at once.
"""

from BTrees.IOBTree import IOBTree
from contextlib import contextmanager
from datetime import datetime
from datetime import timezone
from persistent import Persistent
from ZODB.POSException import ConflictError
from zope.annotation.interfaces import IAnnotations

import logging
import time
import transaction


logger = logging.getLogger("collective.upgradeapi")

KEY = "collective.upgradeapi.runs"


def now():
    """The current time, as seconds since the epoch."""
    return time.time()


def iso(timestamp):
    """``timestamp`` (seconds since the epoch) as ISO 8601 in UTC, or ``None``."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="seconds")


class Slot(Persistent):
    """One value (a plain dict or ``None``) written as a whole.

    Each slot is its own database record: concurrent writers of the same slot
    get a ``ConflictError``, writers of different slots never do.
    """

    value = None


class RunRecord(Persistent):
    """One run of the history (its own record: reports can be long)."""

    def __init__(self, data):
        self.data = data


class Records(Persistent):
    """The lock, the heartbeat, the progress and the history of one site."""

    def __init__(self):
        self.lock = Slot()
        self.beat = Slot()
        self.progress = Slot()
        self.runs = IOBTree()
        self.last_id = 0


def records(site):
    """The records of ``site``, or ``None`` if nothing was ever recorded.

    Reads only; use :meth:`SideConnection.transact` to write.
    """
    return IAnnotations(site).get(KEY)


class SideConnection:
    """A connection to the site's database with a transaction manager of its own.

    What it commits is durable and visible to others at once, whatever happens
    to the transaction of the request that uses it.

    :param site: the Plone site (any object of its database will do).
    """

    def __init__(self, site):
        self.oid = site._p_oid
        self.db = site._p_jar.db()
        self.tm = transaction.TransactionManager()
        self.connection = self.db.open(transaction_manager=self.tm)
        #: whether :meth:`transact` created the records of the site.
        self.created = False

    def close(self):
        self.tm.abort()
        self.connection.close()

    def transact(self, change, attempts=5):
        """Call ``change(records)`` in a fresh transaction and commit it.

        On a write conflict the change is called again on the newest state,
        so it must decide from what it reads.

        :param change: a callable taking the site's :class:`Records`.
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
            site = self.connection.get(self.oid)
            return look(IAnnotations(site).get(KEY))
        finally:
            self.tm.abort()

    def _records(self):
        site = self.connection.get(self.oid)
        annotations = IAnnotations(site)
        found = annotations.get(KEY)
        if found is None:
            found = annotations[KEY] = Records()
            self.created = True
        return found


@contextmanager
def side_connection(site):
    """A :class:`SideConnection` for ``site``, closed afterwards."""
    side = SideConnection(site)
    try:
        yield side
    finally:
        side.close()
