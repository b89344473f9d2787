"""The one lifecycle of every run, an upgrade or a stamp.

:func:`tracked_run` (used by :mod:`collective.upgradeapi.api`) takes the lock
and records the run as running in one transaction, publishes progress while
the run goes on, and records the end of the run and releases the lock in one
transaction, whatever the outcome (:class:`.tracked.TrackedRun`). It writes
through connections of its own (:mod:`.store`), so what it records is
durable whatever happens to the run's own transaction; every rule about what
it writes is in :mod:`.state`. Here: what the history and the answer say for
each way a run can end.
"""

from collective.upgradeapi import config
from collective.upgradeapi.engine.results import RunCancelled
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.tracked import LockLost
from collective.upgradeapi.tracking.tracked import Stopped
from collective.upgradeapi.tracking.tracked import summary
from collective.upgradeapi.tracking.tracked import TrackedRun
from contextlib import contextmanager
from ZODB.POSException import ConflictError

import logging


logger = logging.getLogger("collective.upgradeapi")


@contextmanager
def tracked_run(
    site,
    user,
    dry_run,
    selection,
    steps_total,
    versions,
    profiles=(),
    hold=config.NEVER,
):
    """The lifecycle of one run, around the work done in the ``with`` block.

    Yields the :class:`TrackedRun` (a listener for the runner); the block sets
    its ``result``. Whatever ends the block, the run is recorded and the lock
    released: the result (``success`` or ``failed``); a stop at a step
    boundary (``cancelled`` or ``abandoned``, raised as a 409 error, or
    ``SystemExit`` for a process stopped by a signal); a write conflict
    (``error``, raised as a 409 error); any other exception (``error``,
    raised again). Errors raised here carry the ``run_id``.

    :param versions: ``versions(profile_id)``: a profile's recorded version
        now (what was committed, when the run ends without a result).
    :param profiles: the profiles the run is planned to touch, as the
        history records them (``{"id", "versions"}``), so that a run that
        dies keeps them.
    :param hold: the write hold's mode (:func:`.config.hold_mode`).
    :raises .errors.Locked: another run holds the lock; nothing recorded.
    """
    tracked = TrackedRun(site, user, dry_run, selection, hold)
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
            writes_held=tracked.held,
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
    if tracked.stopped_by:
        # The signal came while the last unit committed: the run is recorded
        # as it ended; now the process stops, as the signal asked.
        raise SystemExit(128 + tracked.stopped_by)


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
    unit = "upgrade" if tracked.progress.values["commit"] == "run" else "unit"
    kept = (
        "the units before it stay committed"
        if profiles.get("committed")
        else "nothing was committed"
    )
    held = (
        "without holding writes (hold_writes: false)"
        if tracked.hold == config.NEVER
        else "with other writes held"
    )
    return (
        "Another transaction changed the same data while the upgrade ran "
        f"(a write conflict); the conflicting {unit} was run again {held}, "
        f"conflicted each time and was rolled back; {kept}. Run it again."
    )


def _stopped(tracked, exc, profiles):
    """Record a run stopped at a step boundary; the error to raise.

    Cancelled by a Manager, or its lock lost: 409. Its process stopping
    (a signal, :class:`.tracked.Stopped`): ``SystemExit``, as the signal asked.
    """
    if isinstance(exc, Stopped):
        outcome, error = history.ABANDONED, tracked.stopped_error()
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
    if isinstance(exc, Stopped):
        return SystemExit(exc.exit_code)
    details = {"run_id": tracked.run_id, "step": error["step"]}
    if "user" in error:
        details["cancelled_by"] = error["user"]
    return UpgradeError(
        error["message"], error_type=error["type"], status=409, **details
    )
