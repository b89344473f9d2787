"""The live status of a site's upgrade runs, read from any request or process.

The answer has the same keys whatever the state, so a client can render it
(a progress bar, a phase, the last error) without special cases.

``state`` is the phase of the run that holds the lock:

- ``preparing``: the lock is taken, the run is being checked and planned;
- ``running``: a step runs (``current_step``);
- ``committing``: a transaction of the run is being committed;

or, when no run holds the lock, the outcome of the last run:

- ``committed``: it ran and was committed (``success``);
- ``rolled_back``: a dry run that ran every step, then rolled back;
- ``failed``: a step failed (with ``commit`` per profile or step, the units
  before it stay committed);
- ``error``: it stopped on an unexpected error (a write conflict, say);
- ``cancelled`` or ``abandoned``: it was cancelled, or its process died;
- ``idle``: no run was ever recorded.
"""

from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import lock
from collective.upgradeapi.tracking.store import iso


IDLE = "idle"
PREPARING = "preparing"
RUNNING = "running"
COMMITTING = "committing"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"

#: The state shown for each history result of the last run.
OUTCOMES = {
    history.SUCCESS: COMMITTED,
    history.FAILED: "failed",
    history.ERROR: "error",
    history.ABANDONED: "abandoned",
    "cancelled": "cancelled",
}

KEYS = (
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


def _percent(done, total):
    if not total:
        return 0
    return min(100, int(100 * done / total))


def _outcome(last):
    """The status of the site when no run holds the lock."""
    answer = dict.fromkeys(KEYS)
    answer.update({"state": IDLE, "progress": 0, "last_run": last})
    if last is None:
        return answer
    state = OUTCOMES.get(last["result"], last["result"])
    if last["result"] == history.SUCCESS and last["dry_run"]:
        state = ROLLED_BACK
    done = sum(1 for step in last["steps"] if step["status"] in ("done", "marked_done"))
    total = last.get("steps_total") or len(last["steps"])
    answer.update(
        {
            "state": state,
            "dry_run": last["dry_run"],
            "user": last["user"],
            "started": iso(last["started"]),
            "steps_done": done,
            "steps_total": total,
            "progress": 100
            if state in (COMMITTED, ROLLED_BACK)
            else _percent(done, total),
            "commit": (last.get("selection") or {}).get("commit", "run"),
            "run_id": last["id"],
            "error_info": last["error"],
        }
    )
    return answer


def status(records):
    """The state of the site's upgrade runs.

    :param records: the site's :class:`.store.Records`, or ``None``.
    :returns: a dict with the keys in :data:`KEYS`; ``last_run`` is the newest
        finished run (as the history keeps it) or ``None``.
    """
    held = lock.describe(records)
    last = history.last_finished(records)
    if held is None:
        return _outcome(last)
    progress = records.holder_progress() or {}
    done = progress.get("steps_done", 0)
    total = progress.get("steps_total")
    answer = dict.fromkeys(KEYS)
    answer.update(
        {
            "state": progress.get("phase", RUNNING) if progress else PREPARING,
            "dry_run": held["dry_run"],
            "user": held["user"],
            "started": iso(progress.get("started")) or held["since"],
            "current_step": progress.get("current_step"),
            "steps_done": done,
            "steps_total": total,
            "progress": _percent(done, total),
            "commit": progress.get("commit"),
            "run_id": progress.get("run_id"),
            "heartbeat": held["heartbeat"],
            "stale": held["stale"],
            "last_run": last,
        }
    )
    return answer
