"""The one lifecycle of every run, an upgrade or a stamp: :func:`tracked_run`.

The lock is taken with the run recorded as running, and released with its
end recorded, each in one transaction, whatever the outcome. In between, the
:class:`TrackedRun` listens to the runner: it publishes progress and, at each
step boundary, stops the run when a Manager asked it to cancel, when it lost
the lock or when its process is stopping (:func:`.holder.handle_signals`).
"""

from collective.upgradeapi import config
from collective.upgradeapi.engine.results import ProfileResult
from collective.upgradeapi.engine.results import RunCancelled
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking import store
from collective.upgradeapi.tracking.publishing import Progress
from collective.upgradeapi.tracking.publishing import SideConnection
from contextlib import contextmanager
from functools import partial
from ZODB.POSException import ConflictError

import logging
import signal
import time
import uuid


logger = logging.getLogger("collective.upgradeapi")


class LockLost(RunCancelled):
    """The run's lock was broken (it looked stale): the run stops."""

    message = (
        "The run's upgrade lock was broken while it ran (it looked stale); "
        "the run stopped so that it does not overlap another one."
    )


@contextmanager
def tracked_run(site, user, dry_run, selection, plans, hold=config.NEVER):
    """The lifecycle of one run, around the work done in the ``with`` block.

    Yields the :class:`TrackedRun`, a listener for the runner; the block sets
    its ``result``. A stop at a step boundary or a write conflict is raised as
    a 409 error (``SystemExit`` for a signal), every error with the ``run_id``.

    :param selection: what was asked, for the history (a JSON-able dict).
    :param plans: the :class:`.engine.profiles.ProfilePlan` list it runs.
    :param hold: the write hold's mode (:func:`.config.hold_mode`).
    :raises .errors.Locked: another run holds the lock; nothing recorded.
    """
    tracked = TrackedRun(site, user, dry_run, selection, hold)
    tracked.acquire(plans)
    try:
        yield tracked
    except BaseException as exc:
        raised = tracked.failed(exc)
        if raised is exc:
            raise
        if isinstance(exc, (RunCancelled, ConflictError)):
            raise raised from None
        raise raised from exc
    tracked.result.run_id = tracked.run_id
    tracked.finish(tracked.result)
    if tracked.stopped_by:
        # The signal came while the last unit committed: the run is recorded
        # as it ended; now the process stops, as the signal asked.
        raise SystemExit(128 + tracked.stopped_by)


class TrackedRun:
    """One run that holds the lock (see :func:`tracked_run`)."""

    def __init__(self, site, user, dry_run, selection, hold):
        self.site, self.user, self.dry_run = site, user, dry_run
        self.selection = selection
        self.token = uuid.uuid4().hex
        self.hold = config.NEVER if dry_run else hold
        self.run_id = self.side = self.ticker = self.progress = None
        #: the step running now (``{"id", "profile", "title"}``), the
        #: engine's result once the run has one, and the ``writes_held``
        #: recorded when the run ended.
        self.step = self.result = self.held = None
        #: the signal that stops this process, once one came, and whether
        #: the run is committing (then the signal waits for the commit).
        self.stopped_by, self.committing = None, False
        self._signals = {}

    def acquire(self, plans):
        """Take the lock and start the run's thread (if it cannot, the run
        ends as an error). :raises .errors.Locked: another run holds it."""
        self.side = SideConnection(self.site)
        # Registered first: a lock of this process whose run is not
        # registered is taken for one whose run is gone.
        holders.register(self.token, self)
        commit = "run" if self.dry_run else self.selection.get("commit", "run")
        self.progress = Progress(commit, self.planned(plans), self.hold)
        profiles = [ProfileResult(p.id, p.instance, fs=p.fs).as_dict() for p in plans]
        args = (self.user, self.dry_run, self.selection, self.progress.values)
        held = self.progress.writes_held()
        try:
            self.run_id = self.progress.values["run_id"] = self.side.transact(
                lambda state: state.take(self.token, *args, profiles, held)
            )
            self.progress.acquired = time.monotonic()
            connect = partial(SideConnection, db=self.side.db, oid=self.side.oid)
            self.ticker = holders.Ticker(connect, self._tick)
            self.ticker.start()
            self._signals = holders.handle_signals(self)
        except BaseException as exc:
            if self.run_id is None:
                holders.unregister(self.token)
                self.side.close()
            else:
                self.finish(None, states.ERROR, summary(exc))
            raise

    def finish(self, result, outcome=None, error=None):
        """Record the end of the run (the engine's ``result``, or ``None``;
        ``outcome``, from the result if omitted; ``error``) and release the
        lock, at once; return whether it committed anything. Never raises."""
        if outcome is None:
            outcome = states.SUCCESS if result.ok else states.FAILED
        if self.stopped_by and outcome == states.ERROR:
            # Unwound by the signal that stops this process.
            outcome, error = states.ABANDONED, self._abandoned(states.STOPPED)
        try:
            if self.ticker is not None:
                self.ticker.stop()
            self.progress.release_hold()
            data = store.result_entry(result, error)
            data["writes_held"] = self.held = self.progress.writes_held()
            ended = self.progress.ended if result is None else ()
            args = (self.token, self.run_id, outcome, ended, result is not None)
            try:
                return self.side.transact(lambda state: state.finish(*args, **data))
            except Exception:
                logger.error("Could not record the upgrade run.", exc_info=True)
                self._write(lambda state: state.finish(self.token, None, None))
        finally:
            for signum, previous in self._signals.items():
                signal.signal(signum, previous)
            holders.unregister(self.token)
            self.side.close()

    def failed(self, exc):
        """Record the run that ``exc`` ended; return the error to raise."""
        if isinstance(exc, RunCancelled):
            return self._stopped(exc)
        error = summary(exc)
        committed = self.finish(None, states.ERROR, error)
        if isinstance(exc, ConflictError):
            return UpgradeError(
                self._conflict_message(committed),
                error_type="ConflictError",
                status=409,
                run_id=self.run_id,
                writes_held=self.held,
            )
        if isinstance(exc, UpgradeError):
            exc.details.setdefault("run_id", self.run_id)
        if isinstance(exc, UpgradeError) or not isinstance(exc, Exception):
            return exc
        return UpgradeError(
            error["message"], error_type=error["type"], run_id=self.run_id
        )

    def _stopped(self, exc):
        """Record a run stopped at a step boundary, cancelled by a Manager or
        its lock lost (then abandoned by whoever broke it); the 409 error."""
        step = self.step
        details = {"run_id": self.run_id, "step": step}
        if isinstance(exc, LockLost):
            outcome = states.ABANDONED
            error = self._abandoned(states.LOCK_BROKEN, LockLost.message)
        else:
            where = f"before step {step['title']!r}" if step else "before its commit"
            outcome, details["cancelled_by"] = states.CANCELLED, exc.user
            error = {"type": "Cancelled", "step": step, "user": exc.user}
            error["message"] = (
                f"The run was cancelled by {exc.user} {where}; what it had not "
                "committed was rolled back."
            )
        self.finish(None, outcome, error)
        kind = error["type"]
        return UpgradeError(error["message"], error_type=kind, status=409, **details)

    def _abandoned(self, error_type, message=None):
        """The history's ``error`` of this run, abandoned now (by default:
        stopped by :attr:`stopped_by`)."""
        if message is None:
            name = signal.Signals(self.stopped_by).name
            message = (
                f"The process was stopped ({name}) while the run went on; what "
                "it had not committed was rolled back."
            )
        error = {"type": error_type, "message": message, "step": self.step}
        return {**error, "heartbeat": store.iso(store.now())}

    def _conflict_message(self, committed):
        unit = "upgrade" if self.progress.values["commit"] == "run" else "unit"
        kept = "the units before it stay committed" if committed else None
        held = "with other writes held"
        if self.hold == config.NEVER:
            held = "without holding writes (hold_writes: false)"
        return (
            "Another transaction changed the same data while the upgrade ran "
            f"(a write conflict); the conflicting {unit} was run again {held}, "
            "conflicted each time and was rolled back; "
            f"{kept or 'nothing was committed'}. Run it again."
        )

    def _tick(self, side, publish):
        """The :class:`.holder.Ticker`'s write: the progress, else a beat."""
        alive = self.progress.flush(side, self.token) if publish else None
        if alive is None:
            alive = side.transact(lambda state: state.beat(self.token))
        return alive

    def planned(self, plans):
        """How many steps of ``plans`` the run is to run."""
        only = set(self.selection.get("steps") or ()) or None
        return sum(len(plan.selected(only)) for plan in plans)

    def _write(self, change):
        try:
            self.side.transact(change)
        except Exception:
            logger.warning("Could not write the upgrade status.", exc_info=True)

    # -- listener ----------------------------------------------------------

    def __call__(self, event, payload):
        """A :attr:`.engine.runner.Runner.listeners` entry: progress, and a
        stop at a step boundary when the run must not go on; nothing else
        raises (a status that cannot be written does not stop a run)."""
        progress = self.progress
        if event == "commit":
            self._stop_if_asked(None)
            self.committing = True
        elif event == "committed":
            self.committing = False
            if progress.values["commit"] != "run":
                progress.release_hold()
                keys = [[r.task.profile, r.task.id] for r in payload]
                held = progress.writes_held()
                self._write(
                    lambda s: s.left_commit(self.token, self.run_id, keys, held)
                )
        elif event == "retry":
            # The lock says whether writes are held before the unit runs again.
            progress.retried(*payload)
            held = progress.writes_held()
            self._write(lambda state: state.retry_unit(self.token, held))
        elif event == "plan":
            progress.update(steps_total=self.planned(payload))
        elif event == "start":
            self._stop_if_asked(payload)
            progress.started(self.step)
        elif event == "end":
            self.step = None
            progress.step_ended(payload)
        if event in ("plan", "start", "end"):
            self.ticker.publish_at(progress.due)

    def _stop_if_asked(self, step_result):
        """At a step boundary (the start of ``step_result``, or a commit when
        it is ``None``: then the lock says the run commits, at once), stop
        the run if it must not go on."""
        self.step = step_result.task.ref() if step_result is not None else None
        if self.stopped_by:
            raise SystemExit(128 + self.stopped_by)
        try:
            if step_result is None:
                verdict = self.progress.commit_point(self.side, self.token)
            else:
                verdict = self.side.read(lambda state: state.directive(self.token))
        except Exception:
            logger.warning("Could not read the upgrade lock.", exc_info=True)
            return
        if verdict is not None and verdict[0] == states.LOST:
            raise LockLost(None)
        if verdict is not None and step_result is not None:
            self.progress.ended.append(step_result.as_dict())  # listed, not run
        if verdict is not None:
            raise RunCancelled(verdict[1])


def summary(exc):
    """``{"type", "message"}`` of an exception, for the history."""
    return {
        "type": getattr(exc, "error_type", None) or exc.__class__.__name__,
        "message": getattr(exc, "message", None) or str(exc) or repr(exc),
    }
