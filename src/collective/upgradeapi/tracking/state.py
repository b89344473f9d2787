"""The run state of one site: its lock, the live progress of the run that
holds it, and its history, with every rule about them in one class.

:class:`RunState` wraps the site's stored records (:mod:`.store`); it is
created for one transaction of a :class:`.store.SideConnection` and is never
stored. Each rule is written once, here:

- one run holds the lock at a time; a lock is identified by its run's token
  (:meth:`RunState.holds`);
- the progress and the heartbeat belong to the run that holds the lock, and
  go with it;
- a live lock is never removed (its run could still commit, and a second run
  would overlap it): its run is asked to cancel; a stale one is broken and
  its run recorded as abandoned, in the same transaction;
- only a run recorded as running may change in the history.

When a lock is *stale* is :func:`.holder.verdict`'s to say.
"""

from collective.upgradeapi import config
from collective.upgradeapi.errors import FOLLOW
from collective.upgradeapi.errors import Locked
from collective.upgradeapi.errors import TooLate
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking import publishing
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now


#: ``state`` of a lock (its ``stale_reason``: :mod:`.holder`).
ALIVE = "alive"
STALE = "stale"
PROCESS_GONE = holders.PROCESS_GONE

#: ``error.type`` of an abandoned run.
LOCK_BROKEN = "LockBroken"
PROCESS_GONE_ERROR = "ProcessGone"
STOPPED = "Stopped"

#: What :meth:`RunState.directive` tells the run that holds the lock.
CANCELLED = "cancelled"
LOST = "lost"

#: What belongs to the run that holds the lock, and goes with it.
HOLDER_SLOTS = ("lock", "progress", "beat")

GONE = (
    "Its process is gone (killed, crashed or restarted) since its last sign "
    "of life (see 'heartbeat'): the run was abandoned, and what it had not "
    "committed then was rolled back."
)


def held_writes(mode, holding=False, seconds=0.0, units=()):
    """The ``writes_held`` record of a run: its write hold's ``mode``,
    whether writes are ``holding`` now, for how many ``seconds`` they were
    held, and the ``units`` run again after a write conflict."""
    return {
        "mode": mode,
        "holding": holding,
        "seconds": round(seconds, 3),
        "units": list(units),
    }


class RunState:
    """The lock, progress and history of one site, and their rules.

    :param data: the site's stored records (see :mod:`.store`).
    """

    def __init__(self, data, versions=None):
        self.data = data
        #: ``versions(profile_id)``: a profile's recorded version as this
        #: transaction sees it, to record what an abandoned run had committed.
        self.versions = versions

    # -- stored slots ------------------------------------------------------

    def get(self, slot):
        """The raw value of a slot (``lock``, ``beat``, ``progress``); the
        methods below are the rules about them."""
        return self.data[slot]["value"]

    def set(self, slot, value):
        """Write a raw slot; use the methods below, which keep the rules."""
        if self.data[slot]["value"] != value:
            self.data[slot]["value"] = value

    @property
    def runs(self):
        """The history's runs (an ``IOBTree``), for :mod:`.history`."""
        return self.data["runs"]

    def new_run_id(self):
        self.data["last_id"] += 1
        return self.data["last_id"]

    # -- the lock ----------------------------------------------------------

    def holds(self, token):
        """Whether the run ``token`` holds the lock."""
        held = self.get("lock")
        return bool(held) and held["token"] == token

    def holder_progress(self):
        """The progress of the run that holds the lock, or ``None``."""
        return self._of_holder("progress")

    def _of_holder(self, slot):
        held = self.get("lock")
        value = self.get(slot)
        if held and value and value.get("token") == held["token"]:
            return value
        return None

    def last_sign_of_life(self):
        """When the lock's holder last showed it lives (epoch seconds), or None."""
        held = self.get("lock")
        if not held:
            return None
        values = (self._of_holder("beat"), self._of_holder("progress"))
        return max([held["since"], *(v["updated"] for v in values if v)])

    def lock(self):
        """The lock as a plain dict, or ``None`` when there is none."""
        held = self.get("lock")
        if not held:
            return None
        stale, reason = holders.verdict(held, self.last_sign_of_life())
        recorded = held.get("holder")
        request = held.get("cancel")
        return {
            "user": held["user"],
            "since": iso(held["since"]),
            "heartbeat": iso(self.last_sign_of_life()),
            "dry_run": held["dry_run"],
            "run_id": (self._of_holder("progress") or {}).get("run_id"),
            "holder": {k: recorded.get(k) for k in ("host", "pid")}
            | {"started": iso(recorded.get("started"))}
            if recorded
            else None,
            "state": STALE if stale else ALIVE,
            "stale": stale,
            "stale_reason": reason,
            "stale_after": config.stale_after(),
            "cancel_requested": {"user": request["user"], "since": iso(request["at"])}
            if request
            else None,
            "committing": bool(held.get("committing")),
            "writes_held": held.get("writes_held"),
        }

    def take(
        self,
        token,
        user,
        dry_run,
        selection,
        progress,
        profiles=(),
        hold=config.RETRIES,
    ):
        """Take the lock for the run ``token``, record the run as running and
        its first ``progress`` (a dict, its ``run_id`` set here).

        A lock whose holder is a process of this host that is gone is taken
        over (its run recorded as abandoned).

        :param hold: the write hold's mode (:func:`.config.hold_mode`), kept
            in the lock's ``writes_held`` with what was held so far.
        :returns: the run's id in the history.
        :raises .errors.Locked: another run holds the lock.
        """
        held = self.get("lock")
        if held and held["token"] != token:
            shown = self.lock()
            if shown["stale_reason"] != PROCESS_GONE:
                raise Locked.held(shown)
            self.abandon(PROCESS_GONE_ERROR, GONE)
        at = now()
        self.set(
            "lock",
            {
                "token": token,
                "user": user,
                "since": at,
                "dry_run": dry_run,
                "holder": holders.identity(),
                "writes_held": held_writes(hold),
            },
        )
        total = progress["steps_total"]
        run_id = history.start(self, user, dry_run, selection, total, profiles)
        progress["run_id"] = run_id
        self.set("progress", {**progress, "token": token, "updated": at})
        return run_id

    def beat(self, token):
        """Record that the run ``token`` lives; ``False`` if it lost the lock."""
        if not self.holds(token):
            return False
        self.set("beat", {"token": token, "updated": now()})
        return True

    def publish(self, token, run_id, progress, steps):
        """Write the run's progress and the ``steps`` that ended, while it
        holds the lock and is recorded as running; ``False`` otherwise."""
        if not self.holds(token) or not history.is_running(self, run_id):
            return False
        history.steps_ended(self, run_id, steps)
        self.set("progress", {**progress, "token": token, "updated": now()})
        return True

    def directive(self, token):
        """What the run ``token`` must do at a step boundary: ``None`` (go
        on), ``(CANCELLED, user)`` or ``(LOST, None)``."""
        if not self.holds(token):
            return LOST, None
        request = self.get("lock").get("cancel")
        return (CANCELLED, request["user"]) if request else None

    def enter_commit(self, token, run_id, progress, steps):
        """The run ``token`` is about to commit: what it must do (see
        :meth:`directive`); when it goes on, the lock says that it commits,
        and its progress is written, in the same transaction. A cancel and a
        commit that meet write the same record: one of them waits for the
        other, so a cancel never gets an answer the run then ignores."""
        verdict = self.directive(token)
        if verdict is None:
            self.set("lock", {**self.get("lock"), "committing": True})
            self.publish(token, run_id, progress, steps)
        return verdict

    def left_commit(self, token, run_id, steps, writes_held=None):
        """The run ``token`` committed a unit, its ``steps`` (``[profile,
        id]``), and goes on; ``writes_held`` (what was held so far, writes
        no longer held) replaces the lock's."""
        held = self.get("lock")
        if self.holds(token) and held.get("committing"):
            held = {k: v for k, v in held.items() if k != "committing"}
            if writes_held is not None:
                held["writes_held"] = writes_held
            self.set("lock", held)
            history.steps_committed(self, run_id, steps)

    def retry_unit(self, token, writes_held):
        """The run ``token`` runs a unit again after a write conflict (it is
        not committing any more); ``writes_held`` replaces the lock's: the
        write hold holds writers while it says ``holding``."""
        if self.holds(token):
            held = {k: v for k, v in self.get("lock").items() if k != "committing"}
            self.set("lock", {**held, "writes_held": writes_held})

    def finish(self, token, run_id, outcome, ended=(), **data):
        """Record the end of the run ``token`` and release its lock, at once.

        :param ended: steps that ended and were not published yet.
        """
        request = self.get("lock").get("cancel") if self.holds(token) else None
        if request:
            data["cancel_requested"] = {
                "user": request["user"],
                "since": iso(request["at"]),
            }
        if run_id is not None:
            history.steps_ended(self, run_id, list(ended))
            history.finish(self, run_id, outcome, **data)
        if self.holds(token):
            self._clear()

    def ask_cancel(self, user):
        """Ask the run that holds the lock to stop at its next step boundary
        (the first request is kept); return the lock as :meth:`lock` shows it.

        :raises .errors.UnknownResource: no run holds the lock.
        :raises .errors.TooLate: the run commits its whole work now.
        """
        held = self.get("lock")
        if not held:
            raise UnknownResource(
                "No upgrade is running on this site: there is nothing to cancel."
            )
        if held.get("committing") and self._commits_once():
            raise TooLate(
                f"The run of {held['user']} is committing its work: it is too "
                "late to cancel it, and it ends in a moment.",
                hints=(FOLLOW,),
                lock=self.lock(),
            )
        if not held.get("cancel"):
            self.set("lock", {**held, "cancel": {"user": user, "at": now()}})
        return self.lock()

    def _commits_once(self):
        progress = self.holder_progress() or {}
        return progress.get("commit", "run") == "run"

    def break_lock(self, user, force=False):
        """Break a stale lock, or ask a live one's run to cancel (``force``).

        :returns: ``(True, the lock as it was)`` when it was broken (its run
            recorded as abandoned), ``(False, the lock)`` when its run was
            asked to cancel.
        :raises .errors.UnknownResource: there is no lock.
        :raises .errors.Locked: the lock is alive and ``force`` is false.
        """
        shown = self.lock()
        if shown is None:
            raise UnknownResource("There is no upgrade lock: no upgrade is running.")
        if not shown["stale"]:
            if not force:
                raise Locked.alive(shown)
            return False, self.ask_cancel(user)
        if shown["stale_reason"] == PROCESS_GONE:
            why = "its process is gone"
        else:
            why = (
                f"it gave no sign of life for more than {shown['stale_after']} seconds"
            )
        self.abandon(
            LOCK_BROKEN,
            f"The upgrade lock was broken by {user}: {why}. What the run had "
            "not committed at its last sign of life (see 'heartbeat') was "
            "rolled back.",
        )
        return True, shown

    def abandon(self, error_type, message, last_seen=None):
        """Drop the lock and record its run as abandoned, in the step it was
        in, at its last sign of life (or ``last_seen``), with what it had
        committed (its profiles' versions as this transaction reads them)."""
        progress = self._of_holder("progress") or {}
        seen = last_seen if last_seen is not None else self.last_sign_of_life()
        history.abandon(
            self,
            progress.get("run_id"),
            message,
            error_type=error_type,
            step=progress.get("current_step"),
            last_seen=seen,
            versions=self.versions,
        )
        self._clear()

    def _clear(self):
        for slot in HOLDER_SLOTS:
            self.set(slot, None)

    # -- the status --------------------------------------------------------

    def status(self):
        """The state of the site's runs (see :func:`.publishing.status`)."""
        return publishing.status(self)
