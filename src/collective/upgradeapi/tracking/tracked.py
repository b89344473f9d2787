"""One tracked run: what makes a run visible to others and stoppable.

:class:`TrackedRun` holds the run's lock from :meth:`TrackedRun.acquire`
(the lock taken and the run recorded as running, in one transaction) to
:meth:`TrackedRun.finish` (the end recorded and the lock released, in one
transaction); in between it is a listener of the engine's runner: it
publishes progress (:mod:`.publishing`) and, at each step boundary (the start
of a step, before a commit), reads the lock and stops the run, raising
:class:`.engine.results.RunCancelled`, when a Manager asked it to cancel,
when it lost the lock (:class:`LockLost`) or when its Zope process is
stopping (:class:`Stopped`). Use it through :func:`.run.tracked_run`.

**Signals.** A run in the main thread (the in-process ``plone-upgrade``, a
``zconsole`` script) handles ``SIGTERM`` and ``SIGINT`` while it holds the
lock, and puts the previous handlers back when it ends: inside a step it
unwinds at once (``SystemExit``), inside a commit it stops once the commit is
done; either way it records itself as abandoned (``Stopped``) and the process
exits with ``128 + signal``. Python lets only the main thread set handlers:
a Zope process serving requests keeps its own answer to ``SIGTERM`` (it ends
at once), and its run is recorded as abandoned (``ProcessGone``), with what
it had committed, by the first process that sees its lock.
"""

from collective.upgradeapi import config
from collective.upgradeapi.engine import changeset
from collective.upgradeapi.engine.results import RunCancelled
from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking.publishing import Progress
from collective.upgradeapi.tracking.publishing import Ticker
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection

import logging
import signal
import threading
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


class TrackedRun:
    """The lifecycle of one run (see :func:`tracked_run`).

    :param site: the Plone site.
    :param user: who runs it.
    :param dry_run: whether the run is a dry run.
    :param selection: what was asked, for the history (a JSON-able dict).
    :param hold: the write hold's mode (:func:`.config.hold_mode`); a dry
        run never holds writes.
    """

    def __init__(self, site, user, dry_run, selection, hold=config.NEVER):
        self.site = site
        self.db = site._p_jar.db()
        self.oid = site._p_oid
        self.token = uuid.uuid4().hex
        self.user = user
        self.dry_run = dry_run
        self.selection = selection
        self.only = set(selection.get("steps") or ()) or None
        self.thread = threading.current_thread()
        self.run_id = None
        self.side = None
        self.ticker = None
        self.progress = None
        #: ``{"id", "profile", "title"}`` of the step running now, or ``None``.
        self.step = None
        #: the run's :class:`.engine.profiles.ProfilePlan` list, once planned.
        self.plans = ()
        #: the engine's result, set by the run when it has one.
        self.result = None
        #: the signal that stops this process, once one came.
        self.stopped_by = None
        #: whether the run is committing (a signal waits for the commit).
        self.committing = False
        self._previous_handlers = {}
        self.hold = config.NEVER if dry_run else hold
        #: seconds writes were held by units that ended, since when (a
        #: ``time.monotonic()``) the unit running now holds them, the units
        #: run again after a write conflict.
        self.held_seconds = 0.0
        self.held_since = None
        self.retried = []
        self.acquired = None
        #: the ``writes_held`` recorded when the run ended.
        self.held = None

    def acquire(self, steps_total, profiles=()):
        """Take the lock and record the run as running, in one transaction;
        start the run's thread. If the thread cannot start, the lock is
        released again.

        :raises .errors.Locked: another run holds the lock.
        """
        self.side = SideConnection(self.site)
        # Registered first: a lock of this process whose run is not
        # registered is taken for one whose run is gone.
        holders.register(self.token, self)
        commit = "run" if self.dry_run else self.selection.get("commit", "run")
        self.progress = Progress(commit, steps_total)
        try:
            self.run_id = self.progress.run_id = self.side.transact(
                lambda state: state.take(
                    self.token,
                    self.user,
                    self.dry_run,
                    self.selection,
                    self.progress.values,
                    profiles,
                    self.hold,
                )
            )
            self.acquired = time.monotonic()
            self.ticker = Ticker(self)
            self.ticker.start()
            self._handle_signals()
        except BaseException as exc:
            if self.run_id is not None:
                self.finish(None, history.ERROR, error=summary(exc))
            else:
                holders.unregister(self.token)
                self._close()
            raise

    def finish(self, result, outcome=None, error=None, **recorded):
        """Record the end of the run and release the lock, in one
        transaction. Never raises: what cannot be written is logged.

        :param result: the engine's :class:`.engine.results.RunResult`, or
            ``None`` when the run did not produce one.
        :param outcome: a :mod:`.history` result; from ``result`` if omitted.
        :param error: ``{"type", "message"}`` when the run stopped on an error.
        :param recorded: more keys of the history entry (``profiles``,
            ``committed``).
        """
        if outcome is None:
            outcome = history.SUCCESS if result.ok else history.FAILED
        if self.stopped_by and outcome == history.ERROR:
            # Unwound by the signal that stops this process.
            outcome, error = history.ABANDONED, self.stopped_error()
        try:
            if self.ticker is not None:
                self.ticker.stop()
            self._release_hold()
            data = {**_outcome(result, error), **recorded}
            data["writes_held"] = self.held = self.writes_held()
            ended = self.progress.ended if result is None else ()

            def record(state):
                state.finish(self.token, self.run_id, outcome, ended=ended, **data)

            try:
                self.side.transact(record)
            except Exception:
                logger.error("Could not record the upgrade run.", exc_info=True)
                self._release()
        finally:
            for signum, previous in self._previous_handlers.items():
                signal.signal(signum, previous)
            holders.unregister(self.token)
            self._close()

    def _handle_signals(self):
        """In the main thread: handle ``SIGTERM`` and ``SIGINT`` until
        :meth:`finish` (see the module's documentation)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if previous is not signal.SIG_IGN:
                self._previous_handlers[signum] = previous
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stopped_by = signum
        logger.warning(
            "This process is stopping (%s) while an upgrade runs; the run "
            "stops and is recorded as abandoned.",
            signal.Signals(signum).name,
        )
        if not self.committing:
            raise SystemExit(128 + signum)

    def _release(self):
        try:
            self.side.transact(lambda state: state.finish(self.token, None, None))
        except Exception:
            logger.error(
                "Could not release the upgrade lock; it becomes stale and can "
                "be broken.",
                exc_info=True,
            )

    def _close(self):
        if self.side is not None:
            self.side.close()
            self.side = None

    def stopped_error(self):
        """The history's ``error`` of a run stopped by :attr:`stopped_by`."""
        name = signal.Signals(self.stopped_by).name
        return {
            "type": states.STOPPED,
            "message": f"The process was stopped ({name}) while the run went "
            "on; what it had not committed was rolled back.",
            "step": self.step,
            "heartbeat": iso(now()),
        }

    # -- listener ----------------------------------------------------------

    def __call__(self, event, payload):
        """A :attr:`.engine.runner.Runner.listeners` entry: progress, and a
        stop at a step boundary (``start``, ``commit``) when the run must not
        go on. Raises nothing else: a status that cannot be written must not
        stop an upgrade."""
        if event == "commit":
            self._commit_point()
            self.committing = True
            return
        if event == "committed":
            self.committing = False
            if self.progress.values["commit"] != "run":
                self._release_hold()
                keys = [[r.task.profile, r.task.id] for r in payload]
                held = self.writes_held()
                self._write(
                    lambda state: state.left_commit(self.token, self.run_id, keys, held)
                )
            return
        if event == "retry":
            self._retry(*payload)
            return
        if event == "start":
            self._stop_if_asked(payload)
        progress = self.progress
        if event == "plan":
            self.plans = payload
            only = self.only
            pending = [s for plan in payload for s in plan.pending]
            progress.planned(sum(1 for s in pending if only is None or s.id in only))
        elif event == "start":
            self.step = payload.task.ref()
            progress.started(self.step)
        elif event == "end":
            self.step = None
            progress.step_ended(payload)
        self.ticker.publish_at(progress.due)

    # -- the write hold ----------------------------------------------------

    def writes_held(self):
        """The run's ``writes_held`` (see :func:`.state.held_writes`)."""
        seconds = self.held_seconds
        if self.hold == config.WHOLE_RUN and self.acquired is not None:
            seconds = time.monotonic() - self.acquired
        elif self.held_since is not None:
            seconds += time.monotonic() - self.held_since
        return states.held_writes(
            self.hold, self.held_since is not None, seconds, self.retried
        )

    def _retry(self, label, step_results):
        """A unit runs again after a write conflict: writes are held from
        now until it commits (unless the mode is ``never``), the lock saying
        so before the unit's new transaction begins."""
        self.retried.append(label)
        self.progress.retried(step_results)
        if self.hold == config.RETRIES and self.held_since is None:
            self.held_since = time.monotonic()
        held = self.writes_held()
        self._write(lambda state: state.retry_unit(self.token, held))

    def _release_hold(self):
        if self.held_since is not None:
            self.held_seconds += time.monotonic() - self.held_since
            self.held_since = None

    def _write(self, change):
        try:
            self.side.transact(change)
        except Exception:
            logger.warning("Could not write the upgrade status.", exc_info=True)

    def _commit_point(self):
        """Before each commit: stop if the run must not go on; else commit,
        the lock saying so (a cancel then is too late in run mode)."""
        self.step = None
        if self.stopped_by:
            raise Stopped(self.stopped_by)
        try:
            verdict = self.progress.commit_point(self.side, self.token)
        except Exception:
            logger.warning("Could not write the upgrade status.", exc_info=True)
            return
        self._obey(verdict, None)

    def _stop_if_asked(self, step_result):
        """Raise what stops the run when it must not go on."""
        self.step = step_result.task.ref() if step_result is not None else None
        if self.stopped_by:
            raise Stopped(self.stopped_by)
        try:
            verdict = self.side.read(lambda state: state.directive(self.token))
        except Exception:
            logger.warning("Could not read the upgrade lock.", exc_info=True)
            return
        self._obey(verdict, step_result)

    def _obey(self, verdict, step_result):
        """Stop the run as ``verdict`` (a :meth:`.state.RunState.directive`)
        says; go on when it is ``None``."""
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
    data = {"error": error}
    if result is None:
        return data
    steps = [step.as_dict() for step in result.steps]
    if result.changes is not None:
        # The change report, bounded: the run's, and a share of it per step.
        data["changes"] = changeset.bound(result.changes, CHANGES_BUDGET)
        share = max(1024, CHANGES_BUDGET // max(len(steps), 1))
        for step, ran in zip(steps, result.steps, strict=True):
            step["changes"] = changeset.bound(ran.changes or {}, share)
    data.update(
        profiles=[profile.as_dict() for profile in result.profiles],
        steps=steps,
        report=result.report,
        committed=result.committed,
        transaction=result.transaction_id,
    )
    failed = result.failed_step
    if error is None and failed is not None:
        data["error"] = {
            "type": failed.error["type"],
            "message": failed.error["message"],
            "step": failed.task.ref(),
        }
    return data
