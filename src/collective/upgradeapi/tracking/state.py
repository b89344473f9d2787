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

A lock is *stale* when its holder is a process of this host that is gone (at
once), or when it gave no sign of life (its taking, a heartbeat, a progress
write) for :func:`.config.stale_after` seconds.
"""

from collective.upgradeapi import config
from collective.upgradeapi.errors import Locked
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now


#: ``state`` of a lock, and ``stale_reason`` of a stale one.
ALIVE = "alive"
STALE = "stale"
PROCESS_GONE = "process_gone"
NO_HEARTBEAT = "no_heartbeat"

#: ``error.type`` of an abandoned run.
LOCK_BROKEN = "LockBroken"
PROCESS_GONE_ERROR = "ProcessGone"
STOPPED = "Stopped"

#: What :meth:`RunState.directive` tells the run that holds the lock.
CANCELLED = "cancelled"
LOST = "lost"

#: ``state`` of the status while a run holds the lock, and after it.
IDLE = "idle"
PREPARING = "preparing"
RUNNING = "running"
COMMITTING = "committing"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"
OUTCOMES = {
    history.SUCCESS: COMMITTED,
    history.FAILED: "failed",
    history.ERROR: "error",
    history.ABANDONED: "abandoned",
    history.CANCELLED: "cancelled",
}
STATUS_KEYS = (
    "state",
    "dry_run",
    "user",
    "started",
    "current_step",
    "steps_done",
    "steps_total",
    "progress",
    "commit",
    "run_id",
    "heartbeat",
    "stale",
    "error_info",
    "last_run",
)

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
GONE = (
    "Its process is gone (killed, crashed or restarted) since its last sign "
    "of life (see 'heartbeat'): the run was abandoned, and what it had not "
    "committed then was rolled back."
)


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

    def _verdict(self):
        """``(stale, reason)`` of the lock (see the module's documentation)."""
        held = self.get("lock")
        judged = holders.judge(held.get("holder"), held["token"])
        if judged == holders.DEAD:
            return True, PROCESS_GONE
        own = (held.get("holder") or {}).get("boot") == holders.identity()["boot"]
        if own and judged == holders.ALIVE:
            return False, None
        if now() - self.last_sign_of_life() > config.stale_after():
            return True, NO_HEARTBEAT
        return False, None

    def lock(self):
        """The lock as a plain dict, or ``None`` when there is none."""
        held = self.get("lock")
        if not held:
            return None
        stale, reason = self._verdict()
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
            "how_to_break": BREAK_HOW if stale else CANCEL_HOW,
        }

    def take(self, token, user, dry_run, selection, steps_total, profiles=()):
        """Take the lock for the run ``token`` and record the run as running.

        A lock whose holder is a process of this host that is gone is taken
        over (its run recorded as abandoned).

        :returns: the run's id in the history.
        :raises .errors.Locked: another run holds the lock.
        """
        held = self.get("lock")
        if held and held["token"] != token:
            shown = self.lock()
            if shown["stale_reason"] != PROCESS_GONE:
                raise locked_error(shown)
            self.abandon(PROCESS_GONE_ERROR, GONE)
        at = now()
        holder = holders.identity()
        self.set(
            "lock",
            {
                "token": token,
                "user": user,
                "since": at,
                "dry_run": dry_run,
                "holder": holder,
            },
        )
        run_id = history.start(self, user, dry_run, selection, steps_total, profiles)
        self.set(
            "progress",
            {
                "token": token,
                "run_id": run_id,
                "started": at,
                "updated": at,
                "phase": PREPARING,
                "commit": "run" if dry_run else selection.get("commit", "run"),
                "current_step": None,
                "steps_started": 0,
                "steps_done": 0,
                "steps_total": steps_total,
            },
        )
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

    def finish(self, token, run_id, outcome, ended=(), **data):
        """Record the end of the run ``token`` and release its lock, at once.

        :param ended: steps that ended and were not published yet.
        """
        if run_id is not None:
            history.steps_ended(self, run_id, list(ended))
            history.finish(self, run_id, outcome, **data)
        if self.holds(token):
            for slot in ("lock", "progress", "beat"):
                self.set(slot, None)

    def ask_cancel(self, user):
        """Ask the run that holds the lock to stop at its next step boundary
        (the first request is kept); return the lock as :meth:`lock` shows it.

        :raises .errors.UnknownResource: no run holds the lock.
        """
        held = self.get("lock")
        if not held:
            raise UnknownResource(
                "No upgrade is running on this site: there is nothing to cancel."
            )
        if not held.get("cancel"):
            self.set("lock", {**held, "cancel": {"user": user, "at": now()}})
        return self.lock()

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
                raise Locked(
                    f"The upgrade lock held by {shown['user']} is alive (see "
                    "'lock') and is not broken: a second run would overlap "
                    "its run. Wait for the run to end, or cancel it with "
                    "DELETE @upgrade/run (or DELETE @upgrade/lock?force=true): "
                    "it stops at its next step and releases the lock. It "
                    f"becomes stale after {shown['stale_after']} seconds "
                    "without a heartbeat.",
                    lock=shown,
                )
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
        for slot in ("lock", "progress", "beat"):
            self.set(slot, None)

    # -- the status --------------------------------------------------------

    def status(self):
        """The state of the site's runs: a dict with :data:`STATUS_KEYS`."""
        held = self.lock()
        last = history.last_finished(self)
        if held is None:
            return _outcome(last)
        progress = self._of_holder("progress") or {}
        done, total = progress.get("steps_done", 0), progress.get("steps_total")
        answer = dict.fromkeys(STATUS_KEYS)
        answer.update(
            state=progress.get("phase", RUNNING) if progress else PREPARING,
            dry_run=held["dry_run"],
            user=held["user"],
            started=iso(progress.get("started")) or held["since"],
            current_step=progress.get("current_step"),
            steps_done=done,
            steps_total=total,
            progress=_percent(done, total),
            commit=progress.get("commit"),
            run_id=progress.get("run_id"),
            heartbeat=held["heartbeat"],
            stale=held["stale"],
            last_run=last,
        )
        return answer


def _percent(done, total):
    return min(100, int(100 * done / total)) if total else 0


def _outcome(last):
    """The status of a site whose lock no run holds."""
    answer = dict.fromkeys(STATUS_KEYS)
    answer.update(state=IDLE, progress=0, last_run=last)
    if last is None:
        return answer
    state = OUTCOMES.get(last["result"], last["result"])
    if last["result"] == history.SUCCESS and last["dry_run"]:
        state = ROLLED_BACK
    done = sum(1 for step in last["steps"] if step["status"] in ("done", "marked_done"))
    total = last.get("steps_total") or len(last["steps"])
    answer.update(
        state=state,
        dry_run=last["dry_run"],
        user=last["user"],
        started=iso(last["started"]),
        steps_done=done,
        steps_total=total,
        progress=100 if state in (COMMITTED, ROLLED_BACK) else _percent(done, total),
        commit=(last.get("selection") or {}).get("commit", "run"),
        run_id=last["id"],
        error_info=last["error"],
    )
    return answer


def locked_error(lock):
    """The error for a run that finds the lock held: who holds it, since
    when, whether it looks alive and what to do."""
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
