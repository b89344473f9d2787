"""A run's live status: published while it goes on, read by anyone.

:class:`Progress` holds the live status of one run and the steps that ended
and are not written yet; :class:`Ticker`, one thread per run, writes the
heartbeat, and the progress that a long step would otherwise hold back: at
most one progress write every :data:`STATUS_INTERVAL` seconds. A run shorter
than that writes nothing in between. The thread ends with its run.

:func:`status` reads it back, the same keys in every state: the phase of the
run that holds the lock (``preparing``, ``running``, ``committing``), or the
outcome of the last run (``committed``, ``rolled_back``, ``failed``,
``error``, ``cancelled``, ``abandoned``; ``idle`` when none was recorded).
"""

from collective.upgradeapi import config
from collective.upgradeapi.engine.results import DONE
from collective.upgradeapi.engine.results import NOT_RUN
from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection

import logging
import math
import threading
import time


logger = logging.getLogger("collective.upgradeapi")

#: Seconds between two progress writes while a run goes on.
STATUS_INTERVAL = 0.5

#: ``state`` of the status while a run holds the lock, and after it.
IDLE = "idle"
PREPARING = "preparing"
RUNNING = "running"
COMMITTING = "committing"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"
OUTCOMES = {
    history.SUCCESS: COMMITTED,
    history.FAILED: "failed",
    history.ERROR: "error",
    history.ABANDONED: "abandoned",
    history.CANCELLED: "cancelled",
}
#: The keys of :meth:`RunState.status`, the same in every state.
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


class Progress:
    """The live status of one run and the steps that ended, not yet written.

    Written by the run's thread or its :class:`Ticker`, one at a time.
    """

    def __init__(self, commit, total):
        self.run_id = None
        self.values = {
            "run_id": None,
            "started": now(),
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

    def planned(self, total):
        self.values["steps_total"] = total
        self.dirty = True

    def started(self, step):
        values = self.values
        values["steps_started"] += 1
        # Plone's core upgrade adds tasks while it runs (recatalog, roles).
        values["steps_total"] = max(values["steps_total"], values["steps_started"])
        values.update(current_step=step, phase=RUNNING)
        self.dirty = True

    def step_ended(self, step_result):
        self.values["steps_done"] += step_result.status == "done"
        self.values["current_step"] = None
        self.ended.append(step_result.as_dict())
        self.dirty = True

    def retried(self, step_results):
        """The unit of ``step_results`` runs again: its steps count again."""
        values = self.values
        values["steps_started"] -= sum(1 for r in step_results if r.status != NOT_RUN)
        values["steps_done"] -= sum(1 for r in step_results if r.status == DONE)
        values.update(phase=RUNNING, current_step=None)
        self.dirty = True

    def commit_point(self, side, token):
        """Before a commit: write the ``committing`` phase and read, in the
        same transaction, whether the run may commit (see
        :meth:`.state.RunState.enter_commit`); return its directive."""
        self.values.update(phase=COMMITTING, current_step=None)
        with self._writing:
            values, steps = dict(self.values), list(self.ended)
            verdict = side.transact(
                lambda state: state.enter_commit(token, self.run_id, values, steps)
            )
            if verdict is None:
                del self.ended[: len(steps)]
                self.dirty = False
                self.written = time.monotonic()
            return verdict

    @property
    def due(self):
        """When the next write is due (``time.monotonic()``)."""
        return self.written + STATUS_INTERVAL

    def flush(self, side, token):
        """Write what changed; ``None`` when nothing did, ``False`` when the
        run no longer holds the lock or is no longer recorded as running."""
        with self._writing:
            if not self.dirty:
                return None
            self.dirty = False
            values, steps = dict(self.values), list(self.ended)
            try:
                written = side.transact(
                    lambda state: state.publish(token, self.run_id, values, steps)
                )
            except BaseException:
                self.dirty = True
                raise
            del self.ended[: len(steps)]
            self.written = time.monotonic()
            return written


class Ticker(threading.Thread):
    """The thread of one run: its heartbeat, and progress when it is due."""

    def __init__(self, tracked):
        super().__init__(name="collective.upgradeapi run", daemon=True)
        self.tracked = tracked
        self.interval = config.heartbeat_interval()
        self.wake = threading.Condition()
        self.due = None
        self.stopping = False

    def publish_at(self, moment):
        with self.wake:
            if self.due is None or moment < self.due:
                self.due = moment
                self.wake.notify()

    def stop(self):
        with self.wake:
            self.stopping = True
            self.wake.notify()
        if self.is_alive():
            self.join(timeout=10)

    def _next(self, beat_at):
        """Wait until a write is due: ``True`` for progress, ``False`` for a
        beat, ``None`` when stopping."""
        with self.wake:
            while not self.stopping:
                moment = min(beat_at, self.due if self.due is not None else math.inf)
                left = moment - time.monotonic()
                if left <= 0:
                    publish = self.due is not None and self.due <= time.monotonic()
                    if publish:
                        self.due = None
                    return publish
                self.wake.wait(left)
            return None

    def run(self):
        tracked = self.tracked
        side = SideConnection(db=tracked.db, oid=tracked.oid)
        beat_at = time.monotonic() + self.interval
        try:
            while (publish := self._next(beat_at)) is not None:
                try:
                    alive = (
                        tracked.progress.flush(side, tracked.token) if publish else None
                    )
                    if alive is None:
                        alive = side.transact(lambda state: state.beat(tracked.token))
                except Exception:
                    logger.warning("Could not write the upgrade status.", exc_info=True)
                    alive = True
                beat_at = time.monotonic() + self.interval
                if not alive:
                    return
        finally:
            side.close()


def status(state):
    """The state of the site's runs: a dict with :data:`STATUS_KEYS`.

    :param state: the site's :class:`.state.RunState`.
    """
    held = state.lock()
    last = history.last_finished(state)
    if held is None:
        return outcome_status(last)
    progress = state.holder_progress() or {}
    done, total = progress.get("steps_done", 0), progress.get("steps_total")
    answer = dict.fromkeys(STATUS_KEYS)
    answer.update(
        state=progress.get("phase", RUNNING) if progress else PREPARING,
        dry_run=held["dry_run"],
        user=held["user"],
        started=iso(progress.get("started")) or held["since"],
        current_step=progress.get("current_step"),
        steps_done=done,
        steps_total=total,
        progress=_percent(done, total),
        commit=progress.get("commit"),
        run_id=progress.get("run_id"),
        heartbeat=held["heartbeat"],
        stale=held["stale"],
        writes_held=held["writes_held"],
        last_run=last,
    )
    return answer


def _percent(done, total):
    return min(100, int(100 * done / total)) if total else 0


def outcome_status(last):
    """The status of a site whose lock no run holds."""
    answer = dict.fromkeys(STATUS_KEYS)
    answer.update(state=IDLE, progress=0, last_run=last)
    if last is None:
        return answer
    state = OUTCOMES.get(last["result"], last["result"])
    if last["result"] == history.SUCCESS and last["dry_run"]:
        state = ROLLED_BACK
    done = sum(1 for step in last["steps"] if step["status"] in ("done", "marked_done"))
    total = last.get("steps_total") or len(last["steps"])
    answer.update(
        state=state,
        dry_run=last["dry_run"],
        user=last["user"],
        started=iso(last["started"]),
        steps_done=done,
        steps_total=total,
        progress=100 if state in (COMMITTED, ROLLED_BACK) else _percent(done, total),
        commit=(last.get("selection") or {}).get("commit", "run"),
        run_id=last["id"],
        error_info=last["error"],
        writes_held=last.get("writes_held"),
    )
    return answer
