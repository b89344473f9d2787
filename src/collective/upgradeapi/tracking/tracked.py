"""One tracked run: lock, heartbeat, progress and history around the engine.

:class:`TrackedRun` is what makes a run visible to others and safe from a
second run: it takes the lock, keeps a heartbeat, publishes progress at each
step (as a :attr:`.engine.runner.Runner.listeners` entry), records the run in
the history and releases the lock at the end, whatever the outcome. All of it
is committed through a connection of its own (:mod:`.store`).
"""

from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import lock
from collective.upgradeapi.tracking.status import COMMITTING
from collective.upgradeapi.tracking.status import RUNNING
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection

import logging
import uuid


logger = logging.getLogger("collective.upgradeapi")


class TrackedRun:
    """The lifecycle of one run: :meth:`acquire`, listener calls, :meth:`finish`.

    :param site: the Plone site.
    :param user: who runs the upgrade.
    :param dry_run: whether the run is a dry run.
    :param selection: what was asked, for the history (a JSON-able dict).
    """

    def __init__(self, site, user, dry_run, selection):
        self.site = site
        self.token = uuid.uuid4().hex
        self.user = user
        self.dry_run = dry_run
        self.selection = selection
        self.run_id = None
        self.side = None
        self.heartbeat = None
        self.only = set(selection.get("steps") or ()) or None
        self._progress = None

    def acquire(self):
        """Take the lock (committed at once) and start the heartbeat.

        :raises .errors.Locked: when another run holds the lock.
        """
        self.side = SideConnection(self.site)
        try:
            lock.acquire(self.side, self.token, self.user, self.dry_run)
        except BaseException:
            self._close()
            raise
        self.heartbeat = lock.Heartbeat(self.site, self.token)
        self.heartbeat.start()

    def finish(self, result, outcome=None, error=None):
        """Record the end of the run, clear the progress and release the lock.

        Never raises: what cannot be written is logged.

        :param result: the engine's :class:`.engine.results.RunResult`, or
            ``None`` when the run did not produce one.
        :param outcome: a :mod:`.history` result; from ``result`` if omitted.
        :param error: ``{"type", "message"}`` when the run stopped on an error.
        """
        if outcome is None:
            outcome = history.SUCCESS if result.ok else history.FAILED
        try:
            self._stop_heartbeat()

            def record(records):
                if self.run_id is not None:
                    history.finish(
                        records, self.run_id, outcome, **_outcome(result, error)
                    )
                if records.holder_progress() is not None:
                    records.set("progress", None)
                records.set("beat", None)

            try:
                self.side.transact(record)
            except Exception:
                logger.error("Could not record the upgrade run.", exc_info=True)
            try:
                lock.release(self.side, self.token)
            except Exception:
                logger.error(
                    "Could not release the upgrade lock; it becomes stale "
                    "and can be broken with DELETE @upgrade/lock.",
                    exc_info=True,
                )
        finally:
            self._close()

    def _stop_heartbeat(self):
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None

    def _close(self):
        if self.side is not None:
            self.side.close()
            self.side = None

    # -- listener --------------------------------------------------------

    def __call__(self, event, payload):
        """A :attr:`.engine.runner.Runner.listeners` entry: publish progress.

        Never raises: a status that cannot be written must not stop an upgrade.
        """
        handlers = {
            "plan": self._planned,
            "start": self._started,
            "end": self._ended,
            "commit": self._committing,
        }
        try:
            handlers[event](payload)
        except Exception:
            logger.warning("Could not publish the upgrade status.", exc_info=True)

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
                "phase": RUNNING,
                "commit": "run" if self.dry_run else self.selection.get("commit"),
                "current_step": None,
                "steps_started": 0,
                "steps_done": 0,
                "steps_total": total,
            }
            self._write(records)
            return run_id

        self.run_id = self.side.transact(begin)

    def _started(self, step_result):
        progress = self._progress
        progress["steps_started"] += 1
        # Plone's core upgrade adds tasks while it runs (recatalog, roles).
        progress["steps_total"] = max(
            progress["steps_total"], progress["steps_started"]
        )
        progress["current_step"] = step_result.task.ref()
        progress["phase"] = RUNNING
        self.side.transact(self._write)

    def _ended(self, step_result):
        progress = self._progress
        if step_result.status == "done":
            progress["steps_done"] += 1
        progress["current_step"] = None
        self.side.transact(self._write)

    def _committing(self, unit):
        self._progress["phase"] = COMMITTING
        self._progress["current_step"] = None
        self.side.transact(self._write)

    def _write(self, records):
        records.set("progress", {**self._progress, "updated": now()})


def _outcome(result, error):
    data = {"error": error}
    if result is None:
        return data
    data.update(
        {
            "profiles": [profile.as_dict() for profile in result.profiles],
            "steps": [step.as_dict() for step in result.steps],
            "report": result.report,
            "committed": result.committed,
            "transaction": result.transaction_id,
        }
    )
    failed = result.failed_step
    if error is None and failed is not None:
        data["error"] = {
            "type": failed.error["type"],
            "message": failed.error["message"],
            "step": failed.task.ref(),
        }
    return data
