"""How the run state is written and read, at once and by anyone.

:class:`SideConnection` commits it through a connection of its own: every
thread, process and ZEO or RelStorage client sees it at once, and a doomed or
aborted run cannot take it back. :class:`Progress` is the live status of one
run, written at most every :data:`STATUS_INTERVAL` seconds while a step
lasts. :func:`status` reads it back, the same keys in every state.
"""

from collective.upgradeapi import config
from collective.upgradeapi.engine.results import DONE
from collective.upgradeapi.engine.results import MARKED
from collective.upgradeapi.engine.results import NOT_RUN
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking import store
from ZODB.POSException import ConflictError
from zope.annotation.interfaces import IAnnotations

import threading
import time
import transaction


#: Seconds between two progress writes while a run goes on.
STATUS_INTERVAL = 0.5

#: ``state`` of the status while a run holds the lock, and after it.
IDLE = "idle"
PREPARING = "preparing"
RUNNING = "running"
COMMITTING = "committing"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"
OUTCOMES = {states.SUCCESS: COMMITTED}
#: The keys of :func:`status`, the same in every state.
STATUS_KEYS = (
    "state",
    "dry_run",
    "user",
    "started",
    "current_step",
    "steps_done",
    "steps_total",
    "progress",
    "commit",
    "run_id",
    "heartbeat",
    "stale",
    "error_info",
    "writes_held",
    "last_run",
)


def records(site):
    """The :class:`.state.RunState` of ``site`` (to read), or ``None``."""
    data = IAnnotations(site).get(store.KEY)
    return states.RunState(data) if data is not None else None


class SideConnection:
    """A connection to the site's database with a transaction manager of
    its own: of ``site``, or of ``db`` and the site's ``oid``."""

    def __init__(self, site=None, db=None, oid=None):
        self.oid = site._p_oid if site is not None else oid
        self.db = site._p_jar.db() if site is not None else db
        self.tm = transaction.TransactionManager()
        self.connection = self.db.open(transaction_manager=self.tm)
        #: the site's, found once: each transaction begun keeps them current.
        self.annotations = IAnnotations(self.connection.get(self.oid))

    def close(self):
        self.tm.abort()
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def transact(self, change, attempts=5):
        """Call ``change(state)`` (a :class:`.state.RunState`) in a fresh
        transaction and commit it; return what it returned. On a write
        conflict it is called again on the newest state, so it must decide
        from what it reads.

        :raises ConflictError: when every attempt conflicted.
        """
        for attempt in range(1, attempts + 1):
            self.tm.begin()
            try:
                data = self.annotations.get(store.KEY)
                if data is None:
                    data = self.annotations[store.KEY] = store.new_data()
                result = change(states.RunState(data, self.version))
                self.tm.commit()
                return result
            except ConflictError:
                self.tm.abort()
                if attempt == attempts:
                    raise
                time.sleep(0.05 * attempt)
            except BaseException:
                self.tm.abort()
                raise

    def read(self, look):
        """Call ``look(state_or_None)`` on the newest committed state."""
        self.tm.begin()
        try:
            data = self.annotations.get(store.KEY)
            return look(states.RunState(data) if data is not None else None)
        finally:
            self.tm.abort()

    def version(self, profile_id):
        """The version recorded for ``profile_id`` in this connection's site."""
        setup = getattr(self.connection.get(self.oid), "portal_setup", None)
        if setup is None:
            return None
        version = setup.getLastVersionForProfile(profile_id)
        return ".".join(version) if isinstance(version, tuple) else version


#: ``with side_connection(site) as side:``, closed afterwards.
side_connection = SideConnection


class Progress:
    """The live status of one run, the steps that ended and are not written
    yet, and its write hold; written by the run's thread or its
    :class:`.holder.Ticker`, one at a time."""

    def __init__(self, commit, total, hold):
        self.values = {
            "run_id": None,
            "started": store.now(),
            "phase": PREPARING,
            "commit": commit,
            "current_step": None,
            "steps_started": 0,
            "steps_done": 0,
            "steps_total": total,
        }
        self.ended = []
        self.dirty = False
        self.written = time.monotonic()
        self._writing = threading.Lock()
        self.hold = hold
        #: seconds writes were held by units that ended, since when (a
        #: ``time.monotonic()``) the unit running now holds them, the units
        #: run again after a write conflict, and when the lock was taken.
        self.held_seconds, self.held_since, self.retried_units = 0.0, None, []
        self.acquired = None

    def update(self, **values):
        self.values.update(values)
        self.dirty = True

    def started(self, step):
        started = self.values["steps_started"] + 1
        # Plone's core upgrade adds tasks while it runs (recatalog, roles).
        total = max(self.values["steps_total"], started)
        self.update(steps_started=started, steps_total=total)
        self.update(current_step=step, phase=RUNNING)

    def step_ended(self, step_result):
        self.ended.append(step_result.as_dict())
        done = self.values["steps_done"] + (step_result.status == DONE)
        self.update(steps_done=done, current_step=None)

    def retried(self, label, step_results):
        """The unit ``label`` runs again after a write conflict: its steps
        count again, and writes are held from now until it commits (in the
        mode ``retries``)."""
        self.retried_units.append(label)
        if self.hold == config.RETRIES and self.held_since is None:
            self.held_since = time.monotonic()
        started = sum(1 for r in step_results if r.status != NOT_RUN)
        done = sum(1 for r in step_results if r.status == DONE)
        self.update(
            steps_started=self.values["steps_started"] - started,
            steps_done=self.values["steps_done"] - done,
            phase=RUNNING,
            current_step=None,
        )

    def writes_held(self):
        """The run's ``writes_held``: its write hold's ``mode``, whether
        writes are ``holding`` now, for how many ``seconds`` they were held,
        and the ``units`` run again after a write conflict."""
        seconds = self.held_seconds
        if self.hold == config.WHOLE_RUN and self.acquired is not None:
            seconds = time.monotonic() - self.acquired
        elif self.held_since is not None:
            seconds += time.monotonic() - self.held_since
        held = {"mode": self.hold, "holding": self.held_since is not None}
        return {**held, "seconds": round(seconds, 3), "units": list(self.retried_units)}

    def release_hold(self):
        """The unit that held writes committed or ended."""
        if self.held_since is not None:
            self.held_seconds += time.monotonic() - self.held_since
            self.held_since = None

    def write(self, side, change):
        """Write the values and the steps that ended with ``change(state,
        values, steps)``; return what it answers (``True`` or ``None``: they
        were written)."""
        with self._writing:
            values, steps = dict(self.values), list(self.ended)
            self.dirty = False
            try:
                answer = side.transact(lambda state: change(state, values, steps))
            except BaseException:
                self.dirty = True
                raise
            if answer in (None, True):
                del self.ended[: len(steps)]
            self.written = time.monotonic()
            return answer

    def flush(self, side, token):
        """Publish what changed; ``None`` when nothing did, ``False`` when
        the run lost the lock or is no longer recorded as running."""
        if not self.dirty:
            return None
        publish, run_id = states.RunState.publish, self.values["run_id"]
        return self.write(side, lambda s, v, e: publish(s, token, run_id, v, e))

    def commit_point(self, side, token):
        """Before a commit: the ``committing`` phase, and the run's
        directive (:meth:`.state.RunState.enter_commit`), at once."""
        self.values.update(phase=COMMITTING, current_step=None)
        enter, run_id = states.RunState.enter_commit, self.values["run_id"]
        return self.write(side, lambda s, v, e: enter(s, token, run_id, v, e))

    @property
    def due(self):
        """When the next write is due (``time.monotonic()``)."""
        return self.written + STATUS_INTERVAL


def status(state):
    """The state of the site's runs: a dict with :data:`STATUS_KEYS`.

    :param state: the site's :class:`.state.RunState`, or ``None``.
    """
    held = state.lock() if state is not None else None
    last = state.last_finished() if state is not None else None
    answer = dict.fromkeys(STATUS_KEYS)
    if held is not None:
        progress = state.of_holder("progress")
        done, total = progress.get("steps_done", 0), progress.get("steps_total")
        answer.update(
            state=progress.get("phase", RUNNING) if progress else PREPARING,
            dry_run=held["dry_run"],
            user=held["user"],
            started=store.iso(progress.get("started")) or held["since"],
            current_step=progress.get("current_step"),
            steps_done=done,
            steps_total=total,
            progress=_percent(done, total),
            commit=progress.get("commit"),
            run_id=progress.get("run_id"),
            heartbeat=held["heartbeat"],
            stale=held["stale"],
            writes_held=held["writes_held"],
        )
    elif last is not None:
        state = OUTCOMES.get(last["result"], last["result"])
        if last["result"] == states.SUCCESS and last["dry_run"]:
            state = ROLLED_BACK
        done = sum(1 for step in last["steps"] if step["status"] in (DONE, MARKED))
        total = last.get("steps_total") or len(last["steps"])
        answer.update(
            state=state,
            dry_run=last["dry_run"],
            user=last["user"],
            started=store.iso(last["started"]),
            steps_done=done,
            steps_total=total,
            progress=100
            if state in (COMMITTED, ROLLED_BACK)
            else _percent(done, total),
            commit=(last.get("selection") or {}).get("commit", "run"),
            run_id=last["id"],
            error_info=last["error"],
            writes_held=last.get("writes_held"),
        )
    else:
        answer.update(state=IDLE, progress=0)
    return {**answer, "last_run": last}


def _percent(done, total):
    return min(100, int(100 * done / total)) if total else 0
