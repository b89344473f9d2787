"""Publishing a run's progress while it goes on: throttled, from its thread.

:class:`Progress` holds the live status of one run and the steps that ended
and are not written yet; :class:`Ticker`, one thread per run, writes the
heartbeat, and the progress that a long step would otherwise hold back: at
most one progress write every :data:`STATUS_INTERVAL` seconds. A run shorter
than that writes nothing in between. The thread ends with its run.
"""

from collective.upgradeapi import config
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection

import logging
import math
import threading
import time


logger = logging.getLogger("collective.upgradeapi")

#: Seconds between two progress writes while a run goes on.
STATUS_INTERVAL = 0.5


class Progress:
    """The live status of one run and the steps that ended, not yet written.

    Written by the run's thread or its :class:`Ticker`, one at a time.
    """

    def __init__(self, commit, total):
        self.run_id = None
        self.values = {
            "run_id": None,
            "started": now(),
            "phase": states.PREPARING,
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
        values.update(current_step=step, phase=states.RUNNING)
        self.dirty = True

    def step_ended(self, step_result):
        self.values["steps_done"] += step_result.status == "done"
        self.values["current_step"] = None
        self.ended.append(step_result.as_dict())
        self.dirty = True

    def committing(self):
        self.values.update(phase=states.COMMITTING, current_step=None)
        self.dirty = True

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
