"""Publishing a run's progress: the live status and the steps that ended.

Publishing costs little: status writes are throttled to one every
:data:`STATUS_INTERVAL` seconds, the steps that ended are written with them,
and a process-wide flusher writes what a long step would hold back. The first
state and the committing phase are written at once, the last with the history
entry (see :mod:`.tracked`).
"""

from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking.status import COMMITTING
from collective.upgradeapi.tracking.status import PREPARING
from collective.upgradeapi.tracking.status import RUNNING
from collective.upgradeapi.tracking.store import Flusher
from collective.upgradeapi.tracking.store import now

import logging
import time


logger = logging.getLogger("collective.upgradeapi")

#: Seconds between two writes of the live status while a run goes on.
STATUS_INTERVAL = 0.5


class PublishesProgress:
    """The listener side of :class:`.tracked.TrackedRun`: progress writes."""

    def _record_step(self, step_result):
        """Add a step that ended to the run's history entry (never raises)."""
        if self.run_id is None:
            return
        self._pending.append(step_result.as_dict())
        try:
            self._publish()
        except Exception:
            logger.warning("Could not record the upgrade step.", exc_info=True)

    def _planned(self, plans):
        total = sum(
            1
            for plan in plans
            for step in plan.pending
            if self.only is None or step.id in self.only
        )

        def begin(records):
            run_id = history.start(
                records, self.user, self.dry_run, self.selection, total
            )
            self._progress = {
                "token": self.token,
                "run_id": run_id,
                "started": now(),
                # Running once its first step is published (see _started).
                "phase": PREPARING,
                "commit": "run" if self.dry_run else self.selection.get("commit"),
                "current_step": None,
                "steps_started": 0,
                "steps_done": 0,
                "steps_total": total,
            }
            self._write(records)
            return run_id

        self.run_id = self.side.transact(begin)
        self._written = time.monotonic()
        self._flusher = Flusher(self.site, self._flush)

    def _started(self, step_result):
        progress = self._progress
        progress["steps_started"] += 1
        # Plone's core upgrade adds tasks while it runs (recatalog, roles).
        progress["steps_total"] = max(
            progress["steps_total"], progress["steps_started"]
        )
        progress["current_step"] = step_result.task.ref()
        progress["phase"] = RUNNING
        self._publish()

    def _ended(self, step_result):
        # Published with the step itself (see _record_step).
        progress = self._progress
        if step_result.status == "done":
            progress["steps_done"] += 1
        progress["current_step"] = None
        self._dirty = True

    def _committing(self, unit):
        # Written now: while the run commits, the storage may not take
        # another commit before it is done.
        self._progress["phase"] = COMMITTING
        self._progress["current_step"] = None
        self._dirty = True
        self._flush(self.side)

    def _publish(self):
        """Write the status now if the last write is old enough, else soon."""
        self._dirty = True
        due = self._written + STATUS_INTERVAL
        if time.monotonic() >= due:
            self._flush(self.side)
        elif self._flusher is not None and self._flusher.deadline != due:
            self._flusher.due(due)

    def _flush(self, side):
        """Write the live status and the steps that ended through ``side``
        (the run's connection, or the flusher's, one at a time)."""
        with self._publishing:
            if not self._dirty:
                return
            self._dirty = False
            progress = dict(self._progress)
            steps = list(self._pending)
            try:
                side.transact(lambda records: self._write(records, progress, steps))
            except BaseException:
                self._dirty = True
                raise
            del self._pending[: len(steps)]
            self._written = time.monotonic()

    def _write(self, records, progress=None, steps=()):
        """Write ``progress`` and the ``steps`` that ended, while the run is
        recorded as running; the current progress without a check when the
        run was just recorded."""
        if progress is None:
            records.set("progress", {**self._progress, "updated": now()})
            return
        record = records.runs.get(self.run_id)
        if record is None or record["result"] != history.RUNNING:
            return  # ended meanwhile: abandoned, or finished
        history.steps_ended(records, self.run_id, steps)
        records.set("progress", {**progress, "updated": now()})
