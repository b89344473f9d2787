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

import heapq
import itertools
import logging
import threading
import time
import transaction


logger = logging.getLogger("collective.upgradeapi")


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


class Records:
    """Reads and writes the stored data of one site (not stored itself).

    :param data: the site's annotation (a ``PersistentMapping``).
    """

    def __init__(self, data):
        self.data = data

    def get(self, slot):
        return self.data[slot]["value"]

    def set(self, slot, value):
        if self.data[slot]["value"] != value:
            self.data[slot]["value"] = value

    @property
    def runs(self):
        return self.data["runs"]

    def new_run_id(self):
        self.data["last_id"] += 1
        return self.data["last_id"]

    def holder_progress(self):
        """The progress of the run that holds the lock, or ``None``.

        The one place that ties progress (and heartbeat) to the lock: both
        carry the lock's token.
        """
        return self._of_holder("progress")

    def holder_beat(self):
        """The last heartbeat of the run that holds the lock, or ``None``."""
        return self._of_holder("beat")

    def _of_holder(self, slot):
        lock = self.get("lock")
        value = self.get(slot)
        if lock and value and value.get("token") == lock["token"]:
            return value
        return None


def _new_data():
    data = PersistentMapping()
    for slot in SLOTS:
        data[slot] = PersistentMapping({"value": None})
    data["runs"] = IOBTree()
    data["last_id"] = 0
    return data


def records(site):
    """The :class:`Records` of ``site``, or ``None`` if nothing was recorded.

    Reads only; use :meth:`SideConnection.transact` to write.
    """
    data = IAnnotations(site).get(KEY)
    return Records(data) if data is not None else None


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
            data = self._annotations().get(KEY)
            return look(Records(data) if data is not None else None)
        finally:
            self.tm.abort()

    def _annotations(self):
        # The adapter reads the site's annotations anew at each call; only
        # its lookup is saved.
        if self._adapted is None:
            self._adapted = IAnnotations(self.connection.get(self.oid))
        return self._adapted

    def _records(self):
        annotations = self._annotations()
        data = annotations.get(KEY)
        if data is None:
            data = annotations[KEY] = _new_data()
        return Records(data)


@contextmanager
def side_connection(site):
    """A :class:`SideConnection` for ``site``, closed afterwards."""
    side = SideConnection(site)
    try:
        yield side
    finally:
        side.close()


class Flusher:
    """Calls ``write(side)`` at a moment asked for, from a thread of this process.

    For writes that must not wait for their caller's next call: a run
    publishes its status at most every so often, and what changed meanwhile
    must be published even when the run then spends an hour in one step.
    One thread per process (started when first needed) serves every
    flusher; each writes through a :class:`SideConnection` of its own,
    opened at its first write. ``write`` must be safe to call from that
    thread while the caller goes on (and decide from what it reads).

    :param site: the Plone site.
    :param write: ``write(side)``, given the flusher's :class:`SideConnection`.
    """

    def __init__(self, site, write):
        self.db = site._p_jar.db()
        self.oid = site._p_oid
        self.write = write
        self.deadline = None
        self.stopped = False
        self.side = None
        self._state = threading.Lock()
        self._writing = threading.Lock()

    def due(self, moment):
        """Write at ``moment`` (``time.monotonic()``), unless asked earlier."""
        with self._state:
            if self.stopped or (self.deadline is not None and self.deadline <= moment):
                return
            self.deadline = moment
        SCHEDULER.schedule(self, moment)

    def stop(self):
        """No more writes; wait for a write under way to end."""
        with self._state:
            self.stopped = True
        with self._writing:
            if self.side is not None:
                self.side.close()
                self.side = None

    def fire(self, moment):
        """Write, if ``moment`` is still when it is due (the scheduler's call)."""
        with self._state:
            if self.stopped or self.deadline != moment:
                return
            self.deadline = None
        with self._writing:
            if self.stopped:
                return
            try:
                if self.side is None:
                    self.side = SideConnection(db=self.db, oid=self.oid)
                self.write(self.side)
            except Exception:
                logger.warning("Could not publish the upgrade status.", exc_info=True)


class Scheduler:
    """The thread that calls :meth:`Flusher.fire` when a write is due."""

    def __init__(self):
        self.condition = threading.Condition()
        self.queue = []  # a heap of (moment, sequence, flusher)
        self.sequence = itertools.count()
        self.thread = None

    def schedule(self, flusher, moment):
        with self.condition:
            heapq.heappush(self.queue, (moment, next(self.sequence), flusher))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="collective.upgradeapi status", daemon=True
                )
                self.thread.start()
            self.condition.notify()

    def _next(self):
        with self.condition:
            while True:
                if not self.queue:
                    self.condition.wait()
                    continue
                moment, _, flusher = self.queue[0]
                left = moment - time.monotonic()
                if left > 0:
                    self.condition.wait(left)
                    continue
                heapq.heappop(self.queue)
                return moment, flusher

    def _run(self):
        while True:
            moment, flusher = self._next()
            flusher.fire(moment)


SCHEDULER = Scheduler()
