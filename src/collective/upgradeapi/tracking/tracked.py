"""One tracked run: lock, heartbeat, progress and history around the engine.

:class:`TrackedRun` is what makes a run visible to others and safe from a
second run: it takes the lock, keeps a heartbeat, publishes progress at each
step (as a :attr:`.engine.runner.Runner.listeners` entry), records the run in
the history and releases the lock at the end, whatever the outcome. All of it
is committed through a connection of its own (:mod:`.store`).

Publishing costs little (:mod:`.publishing`): the live status and the steps
that ended are written together, at most every
:data:`.publishing.STATUS_INTERVAL` seconds. What changed since the last
write is written as soon as that interval has passed, by the run itself at
its next step or by a thread of its own (:class:`.store.Flusher`) when the
run spends longer in one step. The first state (written when the run is
planned) and the last one (the history entry written by
:meth:`TrackedRun.finish`, with every step) are exact.

It is also what stops a run that must not go on: at the start of each step
and before each commit (the run's step boundaries) it reads the lock, and
raises :class:`.engine.results.RunCancelled` when a Manager asked the run to
cancel, :class:`LockLost` when the run no longer holds the lock, and
:class:`Stopped` when its Zope process is stopping. The runner lets these
propagate: what the run had not committed is aborted.
"""

from collective.upgradeapi.engine.results import RunCancelled
from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking import lock
from collective.upgradeapi.tracking.publishing import PublishesProgress
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection

import logging
import threading
import uuid


logger = logging.getLogger("collective.upgradeapi")

#: Listener events at which a run checks whether it may go on.
BOUNDARIES = ("start", "commit")


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

    def __init__(self, reason):
        Exception.__init__(self, f"The Zope process was stopped ({reason}).")
        self.user = None
        self.reason = reason


class TrackedRun(PublishesProgress):
    """The lifecycle of one run: :meth:`acquire`, listener calls, :meth:`finish`.

    :param site: the Plone site.
    :param user: who runs the upgrade.
    :param dry_run: whether the run is a dry run.
    :param selection: what was asked, for the history (a JSON-able dict).
    """

    #: ``{"id", "profile", "title"}`` of the step running now, or ``None``.
    step = None
    #: the thread that runs the steps.
    thread = None
    #: the run's :class:`.engine.plan.ProfilePlan` list, once planned.
    plans = ()

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
        #: steps that ended and are not written yet (``as_dict()``).
        self._pending = []
        #: whether the status changed since it was last written.
        self._dirty = False
        #: when it was last written (``time.monotonic()``).
        self._written = 0.0
        self._publishing = threading.Lock()
        self._flusher = None

    def acquire(self):
        """Take the lock (committed at once) and start the heartbeat.

        :raises .errors.Locked: when another run holds the lock.
        """
        self.side = SideConnection(self.site)
        self.thread = threading.current_thread()
        # Registered first: a lock of this process whose run is not
        # registered is taken for one whose run is gone.
        holders.register(self.token, self)
        try:
            lock.acquire(self.side, self.token, self.user, self.dry_run)
        except BaseException:
            holders.unregister(self.token)
            self._close()
            raise
        self.heartbeat = lock.Heartbeat(self.site, self.token)
        self.heartbeat.start()

    def finish(self, result, outcome=None, error=None, **recorded):
        """Record the end of the run, clear the progress and release the lock.

        Never raises: what cannot be written is logged.

        :param result: the engine's :class:`.engine.results.RunResult`, or
            ``None`` when the run did not produce one.
        :param outcome: a :mod:`.history` result; from ``result`` if omitted.
        :param error: ``{"type", "message"}`` when the run stopped on an error.
        :param recorded: more keys of the history entry (``profiles``,
            ``committed``).
        """
        if outcome is None:
            outcome = history.SUCCESS if result.ok else history.FAILED
        reason = holders.stopping()
        if reason and outcome == history.ERROR:
            # Unwound by the signal that stops this process.
            outcome, error = history.ABANDONED, self._stopped_error(reason)
        try:
            self._stop_heartbeat()
            self._stop_publishing()

            def record(records):
                if self.run_id is not None:
                    if result is None:
                        # Its steps are the ones recorded while it ran.
                        history.steps_ended(records, self.run_id, self._pending)
                    history.finish(
                        records,
                        self.run_id,
                        outcome,
                        **_outcome(result, error),
                        **recorded,
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
            holders.unregister(self.token)
            self._close()

    def finish_stopped(self, exc, profiles=None):
        """Record a run stopped at a step boundary (see :meth:`__call__`) and
        release the lock, like :meth:`finish`.

        :param exc: the :class:`.engine.results.RunCancelled` that stopped it.
        :param profiles: ``{"id", "versions": {"before", "after", "fs"}}`` per
            profile of the run, read after it stopped: a profile whose
            version moved was committed (per profile or step) before.
        :returns: the run's ``error`` entry.
        """
        if isinstance(exc, Stopped):
            outcome, error = history.ABANDONED, self._stopped_error(exc.reason)
        elif isinstance(exc, LockLost):
            # Recorded as abandoned by whoever broke the lock.
            outcome = history.ABANDONED
            error = {
                "type": lock.LOCK_BROKEN,
                "message": str(exc),
                "step": self.step,
                "heartbeat": iso(now()),
            }
        else:
            where = (
                f"before step {self.step['title']!r}"
                if self.step
                else "before its commit"
            )
            outcome = history.CANCELLED
            error = {
                "type": "Cancelled",
                "message": f"The run was cancelled by {exc.user} {where}; what it "
                "had not committed was rolled back.",
                "step": self.step,
                "user": exc.user,
            }
        recorded = {}
        if profiles:
            recorded = {
                "profiles": profiles,
                "committed": any(
                    p["versions"]["after"] != p["versions"]["before"] for p in profiles
                ),
            }
        self.finish(None, outcome, error=error, **recorded)
        return error

    def _stopped_error(self, reason):
        return {
            "type": lock.STOPPED,
            "message": f"The Zope process was stopped ({reason}) while the run "
            "went on; what it had not committed was rolled back.",
            "step": self.step,
            "heartbeat": iso(now()),
        }

    def _stop_publishing(self):
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None

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
        """A :attr:`.engine.runner.Runner.listeners` entry: publish progress,
        and stop the run at a step boundary when it must not go on.

        :raises .engine.results.RunCancelled: at the start of a step or before
            a commit, when a Manager asked the run to cancel (or
            :class:`LockLost`, :class:`Stopped`). Nothing else: a status that
            cannot be written must not stop an upgrade.
        """
        if event in BOUNDARIES:
            self._stop_if_asked(payload if event == "start" else None)
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
        if event == "plan":
            self.plans = payload
        elif event == "start":
            self.step = payload.task.ref()
        elif event == "end":
            self.step = None
            self._record_step(payload)

    def _stop_if_asked(self, step_result):
        """Raise what stops the run when it must not go on (see :meth:`__call__`)."""
        self.step = step_result.task.ref() if step_result is not None else None
        reason = holders.stopping()
        if reason:
            raise Stopped(reason)
        try:
            verdict = lock.check(self.side, self.token)
        except Exception:
            logger.warning("Could not read the upgrade lock.", exc_info=True)
            return
        if verdict is None:
            return
        kind, user = verdict
        if kind == lock.LOST:
            raise LockLost()
        if step_result is not None:
            self._record_step(step_result)  # listed as not run
        raise RunCancelled(user)


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
