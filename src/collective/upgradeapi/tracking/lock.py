"""One upgrade run per site at a time, across threads, processes and clients.

The lock is a record in the site (:mod:`.store`) committed through a
connection of its own before the run starts. Two clients taking it at the
same moment both write the same record: the database lets one commit and
gives the other a conflict, after which it reads the winner's lock.

The holder is identified by a token, unique to one run, and described by its
process (:mod:`.holder`): host, process id, process start and boot id.

While the run lives, a heartbeat is written at each step and every few
seconds by a thread (:class:`Heartbeat`). A lock is *stale* when its holder
is a process of this host that is gone (at once), or when its heartbeat is
older than :func:`.config.stale_after` seconds (a holder on another host, or
one whose process is not known). A stale lock may be broken by a Manager
(:func:`break_lock`); a lock whose holder's process is gone is also taken
over by the next run on this host (:func:`acquire`) and cleared when a Zope
process of this host starts (:mod:`collective.upgradeapi.lifecycle`). Either
way, its run is recorded as ``abandoned``, with the step it was in and its
last sign of life.

A live lock is never broken: a Manager cancels its run instead
(:func:`request_cancel`); the run reads the request at its next step
boundary, stops, aborts and releases the lock itself.
"""

from collective.upgradeapi import config
from collective.upgradeapi.errors import Locked
from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection

import logging
import threading


logger = logging.getLogger("collective.upgradeapi")

#: ``state`` of a lock.
ALIVE = "alive"
STALE = "stale"
#: ``stale_reason`` of a stale lock.
PROCESS_GONE = "process_gone"
NO_HEARTBEAT = "no_heartbeat"

#: ``error.type`` of an abandoned run in the history.
LOCK_BROKEN = "LockBroken"
PROCESS_GONE_ERROR = "ProcessGone"
STOPPED = "Stopped"

BREAK_HOW = (
    "Break it with DELETE @upgrade/lock (plone-upgrade unlock); its run is "
    "recorded as abandoned."
)
CANCEL_HOW = (
    "It is alive and is not broken: cancel its run with DELETE @upgrade/run "
    "(plone-upgrade cancel; DELETE @upgrade/lock?force=true does the same). "
    "The run stops at its next step boundary, commits nothing more and "
    "releases the lock. A run stuck inside one step stops when its Zope "
    "process is stopped or restarted."
)

#: What :func:`check` answers to the run that holds the lock.
CANCELLED = "cancelled"
LOST = "lost"


def last_sign_of_life(records):
    """When the lock's holder last showed it is alive (epoch seconds), or None."""
    lock = records.get("lock") if records is not None else None
    if not lock:
        return None
    moments = [lock["since"]]
    for value in (records.holder_beat(), records.holder_progress()):
        if value:
            moments.append(value["updated"])
    return max(moments)


def verdict(records):
    """``(stale, reason)`` of the lock in ``records`` (which holds one).

    A holder of this host whose process is gone is stale at once; a run of
    this very process is alive while it runs; any other holder is stale after
    :func:`.config.stale_after` seconds without a sign of life.
    """
    lock = records.get("lock")
    judged = holders.judge(lock.get("holder"), lock["token"])
    if judged == holders.DEAD:
        return True, PROCESS_GONE
    own = (lock.get("holder") or {}).get("boot") == holders.identity()["boot"]
    if own and judged == holders.ALIVE:
        return False, None
    if now() - last_sign_of_life(records) > config.stale_after():
        return True, NO_HEARTBEAT
    return False, None


def _holder(lock):
    recorded = lock.get("holder")
    if not recorded:
        return None
    return {
        "host": recorded.get("host"),
        "pid": recorded.get("pid"),
        "started": iso(recorded.get("started")),
    }


def _cancel(lock):
    request = lock.get("cancel")
    if not request:
        return None
    return {"user": request["user"], "since": iso(request["at"])}


def describe(records):
    """The lock as the services show it, or ``None`` when there is none.

    :returns: ``{"user", "since", "heartbeat", "dry_run", "run_id", "holder",
        "state", "stale", "stale_reason", "stale_after", "cancel_requested",
        "how_to_break"}``; ``run_id`` is ``None`` until the run has started,
        ``holder`` is ``{"host", "pid", "started"}`` (``None`` for a lock
        recorded before holders were), ``cancel_requested`` is ``{"user",
        "since"}`` once a Manager asked the run to stop.
    """
    lock = records.get("lock") if records is not None else None
    if not lock:
        return None
    stale, reason = verdict(records)
    run_id = (records.holder_progress() or {}).get("run_id")
    return {
        "user": lock["user"],
        "since": iso(lock["since"]),
        "heartbeat": iso(last_sign_of_life(records)),
        "dry_run": lock["dry_run"],
        "run_id": run_id,
        "holder": _holder(lock),
        "state": STALE if stale else ALIVE,
        "stale": stale,
        "stale_reason": reason,
        "stale_after": config.stale_after(),
        "cancel_requested": _cancel(lock),
        "how_to_break": BREAK_HOW if stale else CANCEL_HOW,
    }


def abandon(records, error_type, message, last_seen=None):
    """Drop the lock in ``records`` and record its run as abandoned.

    Called in the transaction that removes the lock, so both happen or
    neither. The run keeps the step it was in; it ends at its last sign of
    life (or ``last_seen``).

    :param error_type: ``error.type`` in the history (:data:`LOCK_BROKEN`,
        :data:`PROCESS_GONE_ERROR` or :data:`STOPPED`).
    """
    progress = records.holder_progress() or {}
    seen = last_seen if last_seen is not None else last_sign_of_life(records)
    history.abandon(
        records,
        progress.get("run_id"),
        message,
        error_type=error_type,
        step=progress.get("current_step"),
        last_seen=seen,
    )
    records.set("lock", None)
    records.set("progress", None)
    records.set("beat", None)


def gone_message(shown):
    """Why a run whose process is gone was abandoned (for the history)."""
    return (
        "Its process is gone (killed, crashed or restarted) since its last "
        "sign of life (see 'heartbeat'): the run was abandoned, and what it "
        "had not committed then was rolled back."
    )


def acquire(side, token, user, dry_run):
    """Take the lock for ``token``, committed at once.

    A lock whose holder is a process of this host that is gone is taken
    over, and its run recorded as abandoned.

    :param side: a :class:`.store.SideConnection`.
    :param token: identifies the holder; the same for retries of one request.
    :param user: who runs the upgrade.
    :param dry_run: whether the run is a dry run.
    :raises Locked: when another holder has the lock (stale or not).
    """

    def take(records):
        held = records.get("lock")
        if held and held["token"] != token:
            shown = describe(records)
            if shown["stale_reason"] != PROCESS_GONE:
                return shown
            abandon(records, PROCESS_GONE_ERROR, gone_message(shown))
            held = None
        since = held["since"] if held else now()
        records.set(
            "lock",
            {
                "token": token,
                "user": user,
                "since": since,
                "dry_run": dry_run,
                "holder": holders.identity(),
            },
        )
        return None

    other = side.transact(take)
    if other is not None:
        raise locked_error(other)


def release(side, token):
    """Drop the lock if ``token`` holds it (a broken lock stays broken)."""

    def drop(records):
        held = records.get("lock")
        if held and held["token"] == token:
            records.set("lock", None)
            return True
        return False

    return side.transact(drop)


def beat(side, token):
    """Record that the holder ``token`` is alive; ``False`` if it lost the lock."""

    def touch(records):
        held = records.get("lock")
        if not held or held["token"] != token:
            return False
        records.set("beat", {"token": token, "updated": now()})
        return True

    return side.transact(touch)


def check(side, token):
    """What the run ``token`` must do at a step boundary.

    :returns: ``None`` (go on), ``(CANCELLED, user)`` when a Manager asked it
        to stop, ``(LOST, None)`` when it no longer holds the lock.
    """

    def look(records):
        held = records.get("lock") if records is not None else None
        if not held or held["token"] != token:
            return LOST, None
        request = held.get("cancel")
        if request:
            return CANCELLED, request["user"]
        return None

    return side.read(look)


class Heartbeat(threading.Thread):
    """Writes the holder's heartbeat every few seconds while a step runs.

    It uses a connection of its own (connections are not shared across
    threads) and stops when :meth:`stop` is called or the lock is lost.
    """

    def __init__(self, site, token, interval=None):
        super().__init__(name="collective.upgradeapi heartbeat", daemon=True)
        self.side = SideConnection(site)
        self.token = token
        self.interval = interval or config.heartbeat_interval()
        self._stopping = threading.Event()

    def run(self):
        try:
            while not self._stopping.wait(self.interval):
                try:
                    if not beat(self.side, self.token):
                        break
                except Exception:
                    logger.warning("Could not write the heartbeat.", exc_info=True)
        finally:
            self.side.close()

    def stop(self):
        self._stopping.set()
        self.join(timeout=10)


def locked_error(lock):
    """The 409 answer for a run that finds the lock held: says who holds it,
    since when, whether it looks alive and what to do."""
    who = "a dry run" if lock["dry_run"] else "an upgrade"
    started = f"{who.capitalize()} started by {lock['user']}"
    if not lock["stale"]:
        message = (
            f"{started} is running on this site (see 'lock': its process, "
            "since when, its last heartbeat); one upgrade runs at a time. "
            "Follow it with GET @upgrade/status and try again when it has "
            "ended, or cancel it with DELETE @upgrade/run (plone-upgrade "
            "cancel)."
        )
    elif lock["stale_reason"] == PROCESS_GONE:
        message = (
            f"{started} holds the upgrade lock, but its process is gone (see "
            "'lock'). A Manager can break the lock with DELETE @upgrade/lock "
            "(plone-upgrade unlock)."
        )
    else:
        message = (
            f"{started} holds the upgrade lock but gave no sign of life for "
            f"more than {lock['stale_after']} seconds (see 'lock'): its "
            "process probably died. A Manager can break the lock with DELETE "
            "@upgrade/lock (plone-upgrade unlock)."
        )
    return Locked(message, lock=lock)
