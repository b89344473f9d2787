"""Breaking a lock and cancelling a run: never two runs at once.

A stale lock (its holder's process is gone, or it gave no sign of life for
too long) is broken and its run recorded as abandoned. A live lock is never
removed, since its run could still commit and a second run would overlap it;
its run is asked to cancel instead, and stops at its next step boundary.
"""

from collective.upgradeapi.errors import Locked
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.tracking.lock import abandon
from collective.upgradeapi.tracking.lock import describe
from collective.upgradeapi.tracking.lock import LOCK_BROKEN
from collective.upgradeapi.tracking.lock import PROCESS_GONE
from collective.upgradeapi.tracking.store import now


def request_cancel(side, user):
    """Ask the run that holds the lock to stop at its next step boundary.

    The first request is kept (who asked, when); asking again changes
    nothing.

    :returns: the lock as :func:`describe` shows it then.
    :raises .errors.UnknownResource: when no run holds the lock.
    """

    return side.transact(lambda records: _ask(records, user))


def _ask(records, user):
    held = records.get("lock") if records is not None else None
    if not held:
        raise UnknownResource(
            "No upgrade is running on this site: there is nothing to cancel."
        )
    if not held.get("cancel"):
        records.set("lock", {**held, "cancel": {"user": user, "at": now()}})
    return describe(records)


def break_lock(side, user, force=False):
    """Break a stale lock, or ask a live one's run to stop (with ``force``).

    :param user: who breaks it, for the history.
    :param force: for a live lock: ask its run to cancel instead of refusing.
        A live lock is never removed: its run could still commit, and a
        second run would overlap it.
    :returns: ``(broken, lock)``: ``True`` and the lock as it was when it was
        broken (its run is recorded as abandoned), or ``False`` and the lock
        with its cancel request.
    :raises .errors.UnknownResource: when there is no lock.
    :raises .errors.Locked: when the lock is alive and ``force`` is false.
    """

    def remove(records):
        shown = describe(records)
        if shown is None:
            raise UnknownResource("There is no upgrade lock: no upgrade is running.")
        if shown["stale"]:
            if shown["stale_reason"] == PROCESS_GONE:
                why = "its process is gone"
            else:
                why = (
                    "it gave no sign of life for more than "
                    f"{shown['stale_after']} seconds"
                )
            abandon(
                records,
                LOCK_BROKEN,
                f"The upgrade lock was broken by {user}: {why}. What the run "
                "had not committed at its last sign of life (see 'heartbeat') "
                "was rolled back.",
            )
            return True, shown
        if not force:
            raise Locked(
                f"The upgrade lock held by {shown['user']} is alive (see "
                "'lock') and is not broken: a second run would overlap its "
                "run. Wait for the run to end, or cancel it with DELETE "
                "@upgrade/run (or DELETE @upgrade/lock?force=true): it stops "
                "at its next step and releases the lock. It becomes stale "
                f"after {shown['stale_after']} seconds without a heartbeat.",
                lock=shown,
            )
        return False, _ask(records, user)

    return side.transact(remove)
