"""One upgrade run per site at a time, across threads, processes and clients.

The lock is a record in the site (:mod:`.store`) committed through a
connection of its own before the run starts. Two clients taking it at the
same moment both write the same record: the database lets one commit and
gives the other a conflict, after which it reads the winner's lock.

The holder is identified by a token, unique to one run.

While the run lives, a heartbeat is written at each step and every few
seconds by a thread (:class:`Heartbeat`). A lock whose heartbeat is older than
:func:`.config.stale_after` seconds is *stale*: its holder probably died, and
a Manager may break it (:func:`break_lock`).
"""

from collective.upgradeapi import config
from collective.upgradeapi.errors import Locked
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection

import logging
import threading


logger = logging.getLogger("collective.upgradeapi")


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


def describe(records):
    """The lock as the services show it, or ``None`` when there is none.

    :returns: ``{"user", "since", "heartbeat", "dry_run", "run_id", "stale",
        "stale_after"}``; ``run_id`` is ``None`` until the run has started.
    """
    lock = records.get("lock") if records is not None else None
    if not lock:
        return None
    heartbeat = last_sign_of_life(records)
    stale_after = config.stale_after()
    run_id = (records.holder_progress() or {}).get("run_id")
    return {
        "user": lock["user"],
        "since": iso(lock["since"]),
        "heartbeat": iso(heartbeat),
        "dry_run": lock["dry_run"],
        "run_id": run_id,
        "stale": now() - heartbeat > stale_after,
        "stale_after": stale_after,
    }


def acquire(side, token, user, dry_run):
    """Take the lock for ``token``, committed at once.

    :param side: a :class:`.store.SideConnection`.
    :param token: identifies the holder; the same for retries of one request.
    :param user: who runs the upgrade.
    :param dry_run: whether the run is a dry run.
    :raises Locked: when another holder has the lock (stale or not).
    """

    def take(records):
        held = records.get("lock")
        if held and held["token"] != token:
            return describe(records)
        since = held["since"] if held else now()
        records.set(
            "lock",
            {
                "token": token,
                "user": user,
                "since": since,
                "dry_run": dry_run,
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


def break_lock(side, force=False, on_break=None):
    """Remove the lock of a run whose holder died.

    :param force: break it even if it is not stale.
    :param on_break: ``on_break(records, lock)`` is called in the same
        transaction (to record the abandoned run).
    :returns: the lock that was broken, as :func:`describe` showed it.
    :raises .errors.UnknownResource: when there is no lock.
    :raises .errors.Locked: when the lock is not stale and ``force`` is false.
    """

    def remove(records):
        shown = describe(records)
        if shown is None:
            raise UnknownResource("There is no upgrade lock: no upgrade is running.")
        if not shown["stale"] and not force:
            raise Locked(
                f"The upgrade lock held by {shown['user']} is alive (see "
                "'lock'); it becomes stale after "
                f"{shown['stale_after']} seconds without a heartbeat. Wait for "
                "the run to end, or add ?force=true if you are sure its process "
                "is gone.",
                lock=shown,
            )
        lock = records.get("lock")
        records.set("lock", None)
        if on_break is not None:
            on_break(records, lock)
        return shown

    return side.transact(remove)


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
    """The 409 answer for a run that finds the lock held: says what to do."""
    who = "a dry run" if lock["dry_run"] else "an upgrade"
    message = (
        f"{who.capitalize()} started by {lock['user']} is running on this "
        "site (see 'lock'); one upgrade runs at a time. Follow it with "
        "GET @upgrade/status and try again when it has ended."
    )
    if lock["stale"]:
        message = (
            f"{who.capitalize()} started by {lock['user']} holds the "
            "upgrade lock but gave no sign of life for more than "
            f"{lock['stale_after']} seconds: its process probably died. "
            "A Manager can break the lock with DELETE @upgrade/lock."
        )
    return Locked(message, lock=lock)
