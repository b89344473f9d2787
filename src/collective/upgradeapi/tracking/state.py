"""The run state of one site, its lock, the progress of the run that holds
it and its history, with every rule about them: :class:`RunState`.

One run holds the lock at a time, identified by its token; its progress and
heartbeat go with the lock. A live lock is never removed (its run could still
commit): its run is asked to cancel; a stale one (:func:`.holder.verdict`) is
broken, its run recorded as abandoned at once. Only a run recorded as running
changes in the history; what a run committed is recorded, however it ended.
"""

from collective.upgradeapi import config
from collective.upgradeapi.errors import FOLLOW
from collective.upgradeapi.errors import Locked
from collective.upgradeapi.errors import TooLate
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking import store
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping


#: ``result`` of a run in the history.
RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
ERROR = "error"
ABANDONED = "abandoned"
CANCELLED = "cancelled"

#: ``error.type`` of an abandoned run (also ``ProcessGone``).
LOCK_BROKEN = "LockBroken"
STOPPED = "Stopped"

LOST = "lost"  # what :meth:`RunState.directive` tells a run without the lock


class RunState:
    """The site's stored records (:mod:`.store`) in one transaction of a
    :class:`.publishing.SideConnection`; ``versions(profile_id)`` reads a
    profile's recorded version there (what a run had committed)."""

    def __init__(self, data, versions=None):
        self.data = data
        self.versions = versions
        self.runs = data["runs"]

    def get(self, slot):
        """The raw value of ``lock``, ``beat`` or ``progress``."""
        return self.data[slot]["value"]

    def set(self, slot, value):
        """Write a raw slot; the methods below keep the rules."""
        if self.data[slot]["value"] != value:
            self.data[slot]["value"] = value

    def holds(self, token):
        """Whether the run ``token`` holds the lock."""
        held = self.get("lock")
        return bool(held) and held["token"] == token

    def of_holder(self, slot):
        """The ``beat`` or ``progress`` of the run that holds the lock, or
        ``{}``; its progress as the lock was taken until it writes its own."""
        held, value = self.get("lock") or {}, self.get(slot)
        mine = value and value.get("token") == held.get("token")
        return value if mine else held.get(slot, {})

    def last_sign_of_life(self):
        """When the lock's holder last showed it lives (epoch seconds), or None."""
        held = self.get("lock")
        values = (self.of_holder("beat"), self.of_holder("progress"))
        return held and max([held["since"], *(v.get("updated", 0) for v in values)])

    def lock(self):
        """The lock as a plain dict (:func:`.holder.shown`), or ``None``."""
        held = self.get("lock")
        run_id = self.of_holder("progress").get("run_id")
        return held and holders.shown(held, self.last_sign_of_life(), run_id)

    def take(self, token, user, dry_run, selection, progress, profiles, held):
        """Take the lock for the run ``token`` (``held``: its ``writes_held``)
        and record the run as running; return its id. A lock whose holder's
        process is gone is taken over; another raises :class:`.errors.Locked`."""
        if self.get("lock") and not self.holds(token) and not self.clear_dead():
            raise Locked.held(self.lock())
        at = store.now()
        run_id = self.start(user, dry_run, selection, progress["steps_total"], profiles)
        lock = {"token": token, "user": user, "since": at, "dry_run": dry_run}
        lock.update(holder=holders.identity(), writes_held=held)
        progress = {**progress, "run_id": run_id}  # updated: since
        self.set("lock", {**lock, "progress": progress})
        return run_id

    def clear_dead(self):
        """Break the lock if its holder is a process of this host that is
        gone (its run abandoned); return the lock as it was, or ``None``."""
        shown = self.lock()
        if not shown or shown["stale_reason"] != holders.PROCESS_GONE:
            return None
        self.abandon(
            "ProcessGone",
            "Its process is gone (killed, crashed or restarted) since its last "
            "sign of life (see 'heartbeat'): the run was abandoned, and what it "
            "had not committed then was rolled back.",
        )
        return shown

    def beat(self, token):
        """Record that the run ``token`` lives; ``False`` if it lost the lock."""
        if self.holds(token):
            self.set("beat", {"token": token, "updated": store.now()})
        return self.holds(token)

    def publish(self, token, run_id, progress, steps):
        """Write the run's progress and add the ``steps`` that ended, while
        it holds the lock and is recorded as running; ``False`` otherwise."""
        if not self.holds(token) or self.running(run_id) is None:
            return False
        self.add_steps(run_id, steps)
        self.set("progress", {**progress, "token": token, "updated": store.now()})
        return True

    def directive(self, token):
        """What the run ``token`` must do at a step boundary: ``None`` (go
        on), ``(CANCELLED, user)`` or ``(LOST, None)``."""
        if not self.holds(token):
            return LOST, None
        request = self.get("lock").get("cancel")
        return (CANCELLED, request["user"]) if request else None

    def enter_commit(self, token, run_id, progress, steps):
        """The run ``token`` is about to commit: its :meth:`directive`; if it
        goes on, the lock says that it commits, with its progress, at once.
        A cancel and a commit write the same record: one waits for the other,
        so a cancel never gets an answer the run then ignores."""
        verdict = self.directive(token)
        if verdict is None:
            self.set("lock", {**self.get("lock"), "committing": True})
            self.publish(token, run_id, progress, steps)
        return verdict

    def left_commit(self, token, run_id, steps, writes_held):
        """The run ``token`` committed a unit: its ``steps`` (``[profile,
        id]``) are durable; ``writes_held`` replaces the lock's."""
        if self.holds(token) and self.get("lock").get("committing"):
            self.retry_unit(token, writes_held)
            record = self.running(run_id)
            if steps and record is not None:
                committed = record.setdefault("committed_steps", PersistentList())
                committed.extend(list(step) for step in steps)

    def retry_unit(self, token, writes_held):
        """The run ``token`` is not committing; ``writes_held`` replaces the
        lock's (writers are held while it says ``holding``)."""
        if self.holds(token):
            held = {k: v for k, v in self.get("lock").items() if k != "committing"}
            self.set("lock", {**held, "writes_held": writes_held})

    def ask_cancel(self, user):
        """Ask the run that holds the lock to stop at its next step boundary
        (the first request is kept); return the lock. Raises
        :class:`.errors.UnknownResource` when no run holds it, and
        :class:`.errors.TooLate` when the run commits all its work now."""
        held = self.get("lock")
        if not held:
            raise UnknownResource(
                "No upgrade is running on this site: there is nothing to cancel."
            )
        once = self.of_holder("progress").get("commit", "run") == "run"
        if held.get("committing") and once:
            raise TooLate(
                f"The run of {held['user']} is committing its work: it is too "
                "late to cancel it, and it ends in a moment.",
                hints=(FOLLOW,),
                lock=self.lock(),
            )
        if not held.get("cancel"):
            self.set("lock", {**held, "cancel": {"user": user, "at": store.now()}})
        return self.lock()

    def break_lock(self, user, force=False):
        """Break a stale lock: ``(True, the lock as it was)``; or, with
        ``force``, ask a live one's run to cancel: ``(False, the lock)``.
        Raises :class:`.errors.Locked` for a live lock without ``force``."""
        shown = self.lock()
        if shown is None:
            raise UnknownResource("There is no upgrade lock: no upgrade is running.")
        if not shown["stale"]:
            if not force:
                raise Locked.alive(shown)
            return False, self.ask_cancel(user)
        why = f"it gave no sign of life for more than {shown['stale_after']} seconds"
        if shown["stale_reason"] == holders.PROCESS_GONE:
            why = "its process is gone"
        self.abandon(
            LOCK_BROKEN,
            f"The upgrade lock was broken by {user}: {why}. What the run had "
            "not committed at its last sign of life (see 'heartbeat') was "
            "rolled back.",
        )
        return True, shown

    def abandon(self, error_type, message):
        """Drop the lock and record its run as abandoned, in the step it was
        in, at its last sign of life, with what it had committed."""
        progress = self.of_holder("progress")
        record = self.running(progress.get("run_id"))
        if record is not None:
            self._durable(record)
            seen = max(store.plain(record)["started"], self.last_sign_of_life())
            error = {"type": error_type, "message": message}
            error.update(step=progress.get("current_step"), heartbeat=store.iso(seen))
            record.update(result=ABANDONED, finished=seen, error=error)
        for slot in store.SLOTS:
            self.set(slot, None)

    def finish(self, token, run_id, outcome, ended=(), result=True, **data):
        """Record the end of the run ``token`` (``data``: keys of its entry;
        ``ended``: steps not published yet) and release its lock, at once;
        return whether the run committed anything. Without a ``result``,
        what it committed is read from its profiles' versions."""
        record = self.running(run_id)
        if record is not None:
            self.add_steps(run_id, ended)
            if not result:
                self._durable(record)
            if self.holds(token):
                data["cancel_requested"] = self.lock()["cancel_requested"]
            store.complete(record, outcome, data)
        if self.holds(token):
            for slot in store.SLOTS:
                self.set(slot, None)
        return bool(record and record.get("committed"))

    def start(self, user, dry_run, selection, steps_total, profiles=()):
        """Record a run that starts now (``profiles``: ``{"id", "versions"}``
        it is planned to touch); return its id."""
        # The newest run is never dropped: its id is the highest given.
        run_id = (self.runs.maxKey() if self.runs else 0) + 1
        entry = {
            **store.ENTRY,
            "id": run_id,
            "user": user,
            "started": store.now(),
            "dry_run": dry_run,
            "selection": selection,
            "steps_total": steps_total,
            "profiles": profiles,
        }
        self.runs[run_id] = PersistentMapping(store.packed(entry))
        ids = list(self.runs.keys())
        for old in ids[: max(0, len(ids) - config.history_size())]:
            del self.runs[old]
        return run_id

    def running(self, run_id):
        """The record of ``run_id`` if it is running, else ``None``."""
        record = self.runs.get(run_id) if run_id is not None else None
        return record if record is not None and record["result"] == RUNNING else None

    def add_steps(self, run_id, steps):
        """Add ``steps`` to a running run as a record of their own, each with
        at most :data:`.store.LIVE_LOG_BUDGET` characters of its log."""
        record, cut = self.running(run_id), store.LIVE_LOG_BUDGET
        if steps and record is not None:
            chunk = [
                {**s, "log": store.cut_lines(s.get("log") or [], cut)} for s in steps
            ]
            record.setdefault("live", PersistentList()).append(PersistentList(chunk))

    def _durable(self, record):
        """Record where a run's profiles are now, and whether anything of
        it was committed (a profile whose version moved)."""
        profiles = store.plain(record).get("profiles")
        if self.versions is None or not profiles:
            return
        profiles = [
            {**p, "versions": {**p["versions"], "after": self.versions(p["id"])}}
            for p in profiles
        ]
        versions = [p["versions"] for p in profiles]
        committed = any(v["after"] != v["before"] for v in versions)
        record.update(profiles=profiles, committed=committed)

    def entries(self):
        """Every recorded run, newest first, as plain dicts."""
        return [store.plain(self.runs[key]) for key in reversed(self.runs.keys())]

    def entry(self, run_id):
        """The run ``run_id`` as a plain dict, or ``None``."""
        record = self.runs.get(run_id)
        return store.plain(record) if record is not None else None

    def last_finished(self):
        """The newest run that is not running any more, or ``None``."""
        for key in reversed(self.runs.keys()):
            if self.runs[key]["result"] != RUNNING:
                return store.plain(self.runs[key])
        return None
