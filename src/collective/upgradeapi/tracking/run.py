"""The one lifecycle of every run, an upgrade or a stamp.

:func:`tracked_run` takes the lock and records the run as running in one
transaction, and records its end and releases the lock in one transaction,
whatever the outcome. In between, :class:`TrackedRun` listens to the engine's
runner: it publishes progress (:mod:`.publishing`) and, at each step
boundary, stops the run when a Manager asked it to cancel, when it lost the
lock (:class:`LockLost`) or when its process is stopping (:class:`Stopped`).

**Signals.** A run in the main thread (the in-process ``plone-upgrade``, a
``zconsole`` script) answers ``SIGTERM`` and ``SIGINT`` while it holds the
lock: inside a step it unwinds at once, inside a commit it stops once the
commit is done; either way it is recorded as abandoned (``Stopped``) and the
process exits with ``128 + signal``. A Zope process serving requests keeps
its own answer (it ends at once); its run is recorded as abandoned
(``ProcessGone``) by the first process that sees its lock.
"""

from collective.upgradeapi import config
from collective.upgradeapi.engine import changeset
from collective.upgradeapi.engine.results import RunCancelled
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking.publishing import Progress
from collective.upgradeapi.tracking.publishing import SideConnection
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from contextlib import contextmanager
from functools import partial
from ZODB.POSException import ConflictError

import logging
import signal
import time
import uuid


logger = logging.getLogger("collective.upgradeapi")

#: Most bytes of a run's change report its history entry keeps, and as much
#: again for its steps' reports (see :func:`.engine.changeset.bound`).
CHANGES_BUDGET = 32 * 1024


class LockLost(RunCancelled):
    """The run's lock was broken (it looked stale): the run stops."""

    def __init__(self):
        Exception.__init__(
            self,
            "The run's upgrade lock was broken while it ran (it looked stale); "
            "the run stopped so that it does not overlap another one.",
        )
        self.user = None


class Stopped(RunCancelled):
    """The Zope process is stopping (``reason``: the signal): the run stops."""

    def __init__(self, signum):
        self.reason = signal.Signals(signum).name
        Exception.__init__(self, f"The Zope process was stopped ({self.reason}).")
        self.user = None
        self.exit_code = 128 + signum


@contextmanager
def tracked_run(
    site, user, dry_run, selection, steps_total, profiles=(), hold=config.NEVER
):
    """The lifecycle of one run, around the work done in the ``with`` block.

    Yields the :class:`TrackedRun` (a listener for the runner); the block sets
    its ``result``. Whatever ends the block, the run is recorded and the lock
    released: the result (``success`` or ``failed``); a stop at a step
    boundary (``cancelled`` or ``abandoned``, raised as a 409 error, or
    ``SystemExit`` for a process stopped by a signal); a write conflict
    (``error``, raised as a 409 error); any other exception (``error``,
    raised again). Errors raised here carry the ``run_id``.

    :param profiles: the profiles the run is planned to touch, as the
        history records them (``{"id", "versions"}``), so that a run that
        ends without a result records what of them it committed.
    :param hold: the write hold's mode (:func:`.config.hold_mode`).
    :raises .errors.Locked: another run holds the lock; nothing recorded.
    """
    tracked = TrackedRun(site, user, dry_run, selection, hold)
    tracked.acquire(steps_total, profiles)
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
    """One run that holds the lock (see :func:`tracked_run`).

    :param selection: what was asked, for the history (a JSON-able dict).
    :param hold: the write hold's mode; a dry run never holds writes.
    """

    def __init__(self, site, user, dry_run, selection, hold):
        self.site = site
        self.token = uuid.uuid4().hex
        self.user = user
        self.dry_run = dry_run
        self.selection = selection
        self.only = set(selection.get("steps") or ()) or None
        self.run_id = self.side = self.ticker = self.progress = None
        #: ``{"id", "profile", "title"}`` of the step running now, or ``None``.
        self.step = None
        #: the engine's result, set by the run when it has one.
        self.result = None
        #: the signal that stops this process, once one came.
        self.stopped_by = None
        #: whether the run is committing (a signal waits for the commit).
        self.committing = False
        self._previous_handlers = {}
        self.hold = config.NEVER if dry_run else hold
        #: the ``writes_held`` recorded when the run ended.
        self.held = None

    def acquire(self, steps_total, profiles):
        """Take the lock and record the run as running, in one transaction;
        start the run's thread. If the thread cannot start, the run is
        recorded as an error and the lock released again.

        :raises .errors.Locked: another run holds the lock.
        """
        self.side = SideConnection(self.site)
        # Registered first: a lock of this process whose run is not
        # registered is taken for one whose run is gone.
        holders.register(self.token, self)
        commit = "run" if self.dry_run else self.selection.get("commit", "run")
        self.progress = Progress(commit, steps_total, self.hold)
        args = (self.user, self.dry_run, self.selection, self.progress.values)
        try:
            self.run_id = self.progress.values["run_id"] = self.side.transact(
                lambda state: state.take(self.token, *args, profiles, self.hold)
            )
            self.progress.acquired = time.monotonic()
            connect = partial(SideConnection, db=self.side.db, oid=self.side.oid)
            self.ticker = holders.Ticker(connect, self._tick)
            self.ticker.start()
            self._previous_handlers = holders.handle_signals(self._on_signal)
        except BaseException as exc:
            if self.run_id is not None:
                self.finish(None, states.ERROR, error=summary(exc))
            else:
                holders.unregister(self.token)
                self._close()
            raise

    def finish(self, result, outcome=None, error=None):
        """Record the end of the run and release the lock, in one
        transaction. Never raises: what cannot be written is logged.

        :param result: the engine's :class:`.engine.results.RunResult`, or
            ``None`` when the run did not produce one.
        :param outcome: a history result; from ``result`` if omitted.
        :param error: ``{"type", "message"}`` when the run stopped on an error.
        :returns: whether the run committed anything, as recorded.
        """
        if outcome is None:
            outcome = states.SUCCESS if result.ok else states.FAILED
        if self.stopped_by and outcome == states.ERROR:
            # Unwound by the signal that stops this process.
            outcome, error = states.ABANDONED, self._abandoned(states.STOPPED)
        try:
            if self.ticker is not None:
                self.ticker.stop()
            self.progress.release_hold()
            data = _outcome(result, error)
            data["writes_held"] = self.held = self.progress.writes_held()
            ended = self.progress.ended if result is None else ()

            def record(state):
                return state.finish(
                    self.token, self.run_id, outcome, ended, result is not None, **data
                )

            try:
                return self.side.transact(record)
            except Exception:
                logger.error("Could not record the upgrade run.", exc_info=True)
                self._write(lambda state: state.finish(self.token, None, None))
        finally:
            for signum, previous in self._previous_handlers.items():
                signal.signal(signum, previous)
            holders.unregister(self.token)
            self._close()

    def failed(self, exc):
        """Record the run that ``exc`` ended; return the error to raise."""
        if isinstance(exc, RunCancelled):
            return self._stopped(exc)
        error = summary(exc)
        committed = self.finish(None, states.ERROR, error=error)
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
        """Record a run stopped at a step boundary: cancelled by a Manager or
        its lock lost (409), or its process stopping (``SystemExit``)."""
        if isinstance(exc, Stopped):
            self.finish(None, states.ABANDONED, self._abandoned(states.STOPPED))
            return SystemExit(exc.exit_code)
        if isinstance(exc, LockLost):
            # Recorded as abandoned by whoever broke the lock.
            error = self._abandoned(states.LOCK_BROKEN, str(exc))
            self.finish(None, states.ABANDONED, error)
            details = {}
        else:
            step = self.step
            where = f"before step {step['title']!r}" if step else "before its commit"
            error = {
                "type": "Cancelled",
                "message": f"The run was cancelled by {exc.user} {where}; what it "
                "had not committed was rolled back.",
                "step": step,
                "user": exc.user,
            }
            self.finish(None, states.CANCELLED, error)
            details = {"cancelled_by": exc.user}
        return UpgradeError(
            error["message"],
            error_type=error["type"],
            status=409,
            run_id=self.run_id,
            step=error["step"],
            **details,
        )

    def _abandoned(self, error_type, message=None):
        """The history's ``error`` of a run abandoned now: its lock broken,
        or stopped by :attr:`stopped_by` (then ``message`` is omitted)."""
        if message is None:
            name = signal.Signals(self.stopped_by).name
            message = (
                f"The process was stopped ({name}) while the run went on; "
                "what it had not committed was rolled back."
            )
        error = {"type": error_type, "message": message, "step": self.step}
        return {**error, "heartbeat": iso(now())}

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
        """For the run's :class:`.holder.Ticker`: publish the progress when
        it is due and changed, else write a beat."""
        alive = self.progress.flush(side, self.token) if publish else None
        if alive is None:
            alive = side.transact(lambda state: state.beat(self.token))
        return alive

    def _close(self):
        if self.side is not None:
            self.side.close()
            self.side = None

    def _write(self, change):
        try:
            self.side.transact(change)
        except Exception:
            logger.warning("Could not write the upgrade status.", exc_info=True)

    def _on_signal(self, signum, frame):
        self.stopped_by = signum
        logger.warning(
            "This process is stopping (%s) while an upgrade runs; the run "
            "stops and is recorded as abandoned.",
            signal.Signals(signum).name,
        )
        if not self.committing:
            raise SystemExit(128 + signum)

    # -- listener ----------------------------------------------------------

    def __call__(self, event, payload):
        """A :attr:`.engine.runner.Runner.listeners` entry: progress, and a
        stop at a step boundary (``start``, ``commit``) when the run must not
        go on. Raises nothing else: a status that cannot be written must not
        stop an upgrade."""
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
            # The unit runs again: the lock says whether writes are held
            # before the unit's new transaction begins.
            progress.retried(*payload)
            held = progress.writes_held()
            self._write(lambda state: state.retry_unit(self.token, held))
        elif event == "plan":
            steps = [s for plan in payload for s in plan.pending]
            only = self.only
            progress.update(
                steps_total=sum(only is None or s.id in only for s in steps)
            )
        elif event == "start":
            self._stop_if_asked(payload)
            progress.started(self.step)
        elif event == "end":
            self.step = None
            progress.step_ended(payload)
        if event in ("plan", "start", "end"):
            self.ticker.publish_at(progress.due)

    def _stop_if_asked(self, step_result):
        """At a step boundary (the start of ``step_result``, or before a
        commit when it is ``None``): raise what stops the run when it must
        not go on. Before a commit, the lock says the run commits (a cancel
        then is too late in run mode)."""
        self.step = step_result.task.ref() if step_result is not None else None
        if self.stopped_by:
            raise Stopped(self.stopped_by)
        try:
            if step_result is None:
                verdict = self.progress.commit_point(self.side, self.token)
            else:
                verdict = self.side.read(lambda state: state.directive(self.token))
        except Exception:
            logger.warning("Could not read the upgrade lock.", exc_info=True)
            return
        if verdict is None:
            return
        kind, user = verdict
        if kind == states.LOST:
            raise LockLost()
        if step_result is not None:
            self.progress.ended.append(step_result.as_dict())  # listed as not run
        raise RunCancelled(user)


def summary(exc):
    """``{"type", "message"}`` of an exception, for the history."""
    return {
        "type": getattr(exc, "error_type", None) or exc.__class__.__name__,
        "message": getattr(exc, "message", None) or str(exc) or repr(exc),
    }


def _outcome(result, error):
    """The history's keys for the engine's ``result`` (or ``None``)."""
    if result is None:
        return {"error": error}
    steps = [step.as_dict() for step in result.steps]
    data = {"error": error, "steps": steps, "report": result.report}
    if result.changes is not None:
        # The change report, bounded: the run's, and a share of it per step.
        data["changes"] = changeset.bound(result.changes, CHANGES_BUDGET)
        share = max(1024, CHANGES_BUDGET // max(len(steps), 1))
        for step, ran in zip(steps, result.steps, strict=True):
            step["changes"] = changeset.bound(ran.changes or {}, share)
    data.update(
        profiles=[profile.as_dict() for profile in result.profiles],
        committed=result.committed,
        transaction=result.transaction_id,
    )
    failed = result.failed_step
    if error is None and failed is not None:
        error = {k: failed.error[k] for k in ("type", "message")}
        data["error"] = {**error, "step": failed.task.ref()}
    return data
