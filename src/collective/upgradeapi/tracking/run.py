"""One tracked run: the lock, the live progress and the history around a run.

:func:`tracked_run` is the one lifecycle of every run, an upgrade or a stamp
(:mod:`collective.upgradeapi.api`): it takes the lock and records the run as
running in one transaction, publishes progress while the run goes on, and
records the end of the run and releases the lock in one transaction,
whatever the outcome. It writes through connections of its own
(:mod:`.store`), so what it records is durable whatever happens to the run's
own transaction; every rule about what it writes is in :mod:`.state`.

While the run goes on, a thread of its own publishes its progress and
heartbeat (:mod:`.publishing`); the thread ends with the run: nothing of this
package runs in a process where no run goes on.

At each step boundary (the start of a step, before a commit) the run reads
the lock: it stops, raising :class:`.engine.results.RunCancelled`, when a
Manager asked it to cancel, when it lost the lock (:class:`LockLost`) or when
its Zope process is stopping (:class:`Stopped`).
"""

from collective.upgradeapi.engine.results import RunCancelled
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking.publishing import Progress
from collective.upgradeapi.tracking.publishing import Ticker
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection
from contextlib import contextmanager
from ZODB.POSException import ConflictError

import logging
import threading
import uuid


logger = logging.getLogger("collective.upgradeapi")


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


class TrackedRun:
    """The lifecycle of one run (see :func:`tracked_run`).

    :param site: the Plone site.
    :param user: who runs it.
    :param dry_run: whether the run is a dry run.
    :param selection: what was asked, for the history (a JSON-able dict).
    """

    def __init__(self, site, user, dry_run, selection):
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
        #: the run's :class:`.engine.plan.ProfilePlan` list, once planned.
        self.plans = ()
        #: the engine's result, set by the run when it has one.
        self.result = None
        #: why this process stops the run (a signal's name), set by
        #: :mod:`collective.upgradeapi.lifecycle`; the run stops at its next
        #: step boundary.
        self.stop_reason = None

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
                )
            )
            self.ticker = Ticker(self)
            self.ticker.start()
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
        reason = self.stop_reason
        if reason and outcome == history.ERROR:
            # Unwound by the signal that stops this process.
            outcome, error = history.ABANDONED, self._stopped_error(reason)
        try:
            if self.ticker is not None:
                self.ticker.stop()
            data = {**_outcome(result, error), **recorded}
            ended = self.progress.ended if result is None else ()

            def record(state):
                state.finish(self.token, self.run_id, outcome, ended=ended, **data)

            try:
                self.side.transact(record)
            except Exception:
                logger.error("Could not record the upgrade run.", exc_info=True)
                self._release()
        finally:
            holders.unregister(self.token)
            self._close()

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

    def _stopped_error(self, reason):
        return {
            "type": states.STOPPED,
            "message": f"The Zope process was stopped ({reason}) while the run "
            "went on; what it had not committed was rolled back.",
            "step": self.step,
            "heartbeat": iso(now()),
        }

    # -- listener ----------------------------------------------------------

    def __call__(self, event, payload):
        """A :attr:`.engine.runner.Runner.listeners` entry: progress, and a
        stop at a step boundary (``start``, ``commit``) when the run must not
        go on. Raises nothing else: a status that cannot be written must not
        stop an upgrade."""
        if event in ("start", "commit"):
            self._stop_if_asked(payload if event == "start" else None)
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
        if event != "commit":
            self.ticker.publish_at(progress.due)
            return
        # Written now: while the run commits, the storage may not take
        # another commit before it is done.
        progress.committing()
        try:
            progress.flush(self.side, self.token)
        except Exception:
            logger.warning("Could not write the upgrade status.", exc_info=True)

    def _stop_if_asked(self, step_result):
        """Raise what stops the run when it must not go on."""
        self.step = step_result.task.ref() if step_result is not None else None
        if self.stop_reason:
            raise Stopped(self.stop_reason)
        try:
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
    data = {"error": error}
    if result is None:
        return data
    data.update(
        profiles=[profile.as_dict() for profile in result.profiles],
        steps=[step.as_dict() for step in result.steps],
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


@contextmanager
def tracked_run(site, user, dry_run, selection, steps_total, versions, profiles=()):
    """The lifecycle of one run, around the work done in the ``with`` block.

    Yields the :class:`TrackedRun` (a listener for the runner); the block sets
    its ``result``. Whatever ends the block, the run is recorded and the lock
    released: the result (``success`` or ``failed``); a stop at a step
    boundary (``cancelled`` or ``abandoned``, raised as a 409 or, for a
    stopping process, 503 error); a write conflict (``error``, raised as a
    409 error); any other exception (``error``, raised again). Errors raised
    here carry the ``run_id``.

    :param versions: ``versions(profile_id)``: a profile's recorded version
        now (what was committed, when the run ends without a result).
    :param profiles: the profiles the run is planned to touch, as the
        history records them (``{"id", "versions"}``), so that a run that
        dies keeps them.
    :raises .errors.Locked: another run holds the lock; nothing recorded.
    """
    tracked = TrackedRun(site, user, dry_run, selection)
    tracked.acquire(steps_total, profiles)
    try:
        yield tracked
    except RunCancelled as exc:
        raise _stopped(tracked, exc, _profiles(tracked, versions)) from None
    except ConflictError as exc:
        profiles = _profiles(tracked, versions)
        tracked.finish(None, history.ERROR, error=summary(exc), **profiles)
        raise UpgradeError(
            _conflict_message(tracked, profiles),
            error_type="ConflictError",
            status=409,
            run_id=tracked.run_id,
        ) from None
    except BaseException as exc:
        error = summary(exc)
        tracked.finish(None, history.ERROR, error=error, **_profiles(tracked, versions))
        if isinstance(exc, UpgradeError):
            exc.details.setdefault("run_id", tracked.run_id)
            raise
        if not isinstance(exc, Exception):
            raise
        raise UpgradeError(
            error["message"], error_type=error["type"], run_id=tracked.run_id
        ) from exc
    tracked.result.run_id = tracked.run_id
    tracked.finish(tracked.result)


def _profiles(tracked, versions):
    """``profiles`` and ``committed`` of a run that ended without a result:
    a profile whose version moved was committed (per profile or step)."""
    try:
        profiles = [
            {
                "id": plan.id,
                "versions": {
                    "before": plan.instance,
                    "after": versions(plan.id),
                    "fs": plan.fs,
                },
            }
            for plan in tracked.plans
        ]
    except Exception:
        logger.warning("Could not read the profiles' versions.", exc_info=True)
        return {}
    moved = any(p["versions"]["after"] != p["versions"]["before"] for p in profiles)
    return {"profiles": profiles, "committed": moved} if profiles else {}


def _conflict_message(tracked, profiles):
    what = (
        "nothing was committed and the upgrade was not retried"
        if tracked.progress.values["commit"] == "run"
        else "the conflicting unit was retried and then rolled back; the "
        "units before it stay committed"
        if profiles.get("committed")
        else "the conflicting unit was retried and then rolled back; nothing "
        "was committed"
    )
    return (
        "Another transaction changed the same data while the upgrade ran "
        f"(a write conflict); {what}. Run it again, when editors are less busy."
    )


def _stopped(tracked, exc, profiles):
    """Record a run stopped at a step boundary; the error to raise.

    Cancelled by a Manager, or its lock lost: 409. Its process stopping: 503.
    """
    if isinstance(exc, Stopped):
        outcome, error = history.ABANDONED, tracked._stopped_error(exc.reason)
    elif isinstance(exc, LockLost):
        # Recorded as abandoned by whoever broke the lock.
        outcome = history.ABANDONED
        error = {
            "type": states.LOCK_BROKEN,
            "message": str(exc),
            "step": tracked.step,
            "heartbeat": iso(now()),
        }
    else:
        step = tracked.step
        where = f"before step {step['title']!r}" if step else "before its commit"
        outcome = history.CANCELLED
        error = {
            "type": "Cancelled",
            "message": f"The run was cancelled by {exc.user} {where}; what it "
            "had not committed was rolled back.",
            "step": step,
            "user": exc.user,
        }
    tracked.finish(None, outcome, error=error, **profiles)
    status = 503 if error["type"] == states.STOPPED else 409
    details = {"run_id": tracked.run_id, "step": error["step"]}
    if "user" in error:
        details["cancelled_by"] = error["user"]
    return UpgradeError(
        error["message"], error_type=error["type"], status=status, **details
    )
