"""The live status of a site's upgrade runs, read from any request or process."""

from collective.upgradeapi.tracking import history
from collective.upgradeapi.tracking import lock
from collective.upgradeapi.tracking.store import iso


IDLE = "idle"
RUNNING = "running"


def status(records):
    """The state of the site's upgrade runs.

    :param records: the site's :class:`.store.Records`, or ``None``.
    :returns: ``{"state": "idle", "last_run"}`` or, while a run holds the
        lock, ``{"state": "running", "dry_run", "user", "started",
        "current_step", "steps_done", "steps_total", "run_id", "heartbeat",
        "stale", "last_run"}``. ``last_run`` is the newest finished run
        (``{"id", "result", ...}`` as the history lists it) or ``None``.
    """
    held = lock.describe(records)
    answer = {
        "state": IDLE,
        "dry_run": None,
        "user": None,
        "started": None,
        "current_step": None,
        "steps_done": None,
        "steps_total": None,
        "last_run": history.last_finished(records),
    }
    if held is None:
        return answer
    progress = records.holder_progress() or {}
    answer.update(
        {
            "state": RUNNING,
            "dry_run": held["dry_run"],
            "user": held["user"],
            "started": iso(progress.get("started")) or held["since"],
            "current_step": progress.get("current_step"),
            "steps_done": progress.get("steps_done", 0),
            "steps_total": progress.get("steps_total"),
            "run_id": progress.get("run_id"),
            "heartbeat": held["heartbeat"],
            "stale": held["stale"],
        }
    )
    return answer
