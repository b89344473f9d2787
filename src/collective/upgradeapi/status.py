"""Live status of the upgrade run of a site, and the tracking of one run.

:class:`RunTracker` does, for one request, what makes a run visible to
others: it takes the lock, keeps a heartbeat, publishes progress at each
step (through :attr:`.run.Runner.listeners`), records the run in the history
and releases the lock at the end, whatever the outcome. All of it is
committed through a connection of its own (:mod:`.store`).

:func:`status` reads it back, from any request or process.
"""

from collective.upgradeapi import history
from collective.upgradeapi import lock
from collective.upgradeapi.store import iso
from collective.upgradeapi.store import now
from collective.upgradeapi.store import SideConnection

import logging


logger = logging.getLogger("collective.upgradeapi")

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
    last = history.last_finished(records)
    answer = {
        "state": IDLE,
        "dry_run": None,
        "user": None,
        "started": None,
        "current_step": None,
        "steps_done": None,
        "steps_total": None,
        "last_run": last,
    }
    if held is None:
        return answer
    progress = records.progress.value or {}
    if progress.get("token") != records.lock.value["token"]:
        progress = {}
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


def _step_ref(step_result):
    task = step_result.task
    return {"id": task.id, "profile": task.profile, "title": task.title}


class RunTracker:
    """Makes one run visible: lock, heartbeat, progress, history.

    Use it as a :attr:`.run.Runner.listeners` entry between :meth:`acquire`
    and :meth:`finish` (or :meth:`suspend`, when the request will be retried).

    :param site: the Plone site.
    :param token: identifies the request (stable across its retries).
    :param user: who runs the upgrade.
    :param dry_run: whether the run is a dry run.
    :param selection: what was asked, for the history (a JSON-able dict).
    :param run_id: the history id this request recorded before a retry.
    """

    def __init__(self, site, token, user, dry_run, selection, run_id=None):
        self.site = site
        self.token = token
        self.user = user
        self.dry_run = dry_run
        self.selection = selection
        self.run_id = run_id
        self.side = None
        self.heartbeat = None
        self.only = set(selection.get("steps") or ()) or None
        self._progress = None

    # -- lifecycle -------------------------------------------------------

    def acquire(self):
        """Take the lock (committed at once) and start the heartbeat.

        :returns: whether the site's records were created by this call (the
            request's own connection should then start a fresh transaction).
        :raises .lock.Locked: when another run holds the lock.
        """
        self.side = SideConnection(self.site)
        try:
            lock.acquire(self.side, self.token, self.user, self.dry_run)
        except BaseException:
            self.side.close()
            self.side = None
            raise
        self.heartbeat = lock.Heartbeat(self.site, self.token)
        self.heartbeat.start()
        return self.side.created

    def finish(self, result, outcome=None, error=None):
        """Record the end of the run, clear the progress and release the lock.

        Never raises: what cannot be written is logged.

        :param result: the engine's :class:`.run.RunResult`, or ``None`` when
            the run did not produce one.
        :param outcome: a :mod:`.history` result; from ``result`` if omitted.
        :param error: ``{"type", "message"}`` when the run stopped on an error.
        """
        try:
            self._stop_heartbeat()
            if self.side is None:  # a retry whose check failed before acquire
                self.side = SideConnection(self.site)

            def record(records):
                if self.run_id is not None:
                    history.finish(
                        records, self.run_id, outcome, **self._outcome(result, error)
                    )
                progress = records.progress.value
                if progress and progress.get("token") == self.token:
                    records.progress.value = None

            if outcome is None:
                outcome = history.SUCCESS if result.ok else history.FAILED
            try:
                self.side.transact(record)
            except Exception:
                logger.error("Could not record the upgrade run.", exc_info=True)
            try:
                lock.release(self.side, self.token)
            except Exception:
                logger.error(
                    "Could not release the upgrade lock; it becomes stale "
                    "and can be broken with DELETE @upgrade/lock.",
                    exc_info=True,
                )
        finally:
            self._close()

    def suspend(self):
        """Stop tracking but keep the lock: the request will be retried."""
        self._stop_heartbeat()
        self._close()

    def _stop_heartbeat(self):
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None

    def _close(self):
        if self.side is not None:
            self.side.close()
            self.side = None

    def _outcome(self, result, error):
        data = {"error": error}
        if result is None:
            return data
        data.update(
            {
                "profiles": [profile.as_dict() for profile in result.profiles],
                "steps": [step.as_dict() for step in result.steps],
                "report": result.report,
                "committed": result.committed,
            }
        )
        failed = result.failed_step
        if error is None and failed is not None:
            data["error"] = {
                "type": failed.error["type"],
                "message": failed.error["message"],
                "step": _step_ref(failed),
            }
        return data

    # -- listener --------------------------------------------------------

    def __call__(self, event, payload):
        """A :attr:`.run.Runner.listeners` entry: publish progress.

        Never raises: a status that cannot be written must not stop an upgrade.
        """
        try:
            if event == "plan":
                self._planned(payload)
            elif event == "start":
                self._started(payload)
            elif event == "end":
                self._ended(payload)
        except Exception:
            logger.warning("Could not publish the upgrade status.", exc_info=True)

    def _planned(self, plans):
        total = sum(
            1
            for plan in plans
            for step in plan.pending
            if self.only is None or step.id in self.only
        )

        def begin(records):
            run_id = history.start(
                records,
                self.user,
                self.dry_run,
                self.selection,
                total,
                run_id=self.run_id,
            )
            self._progress = {
                "token": self.token,
                "run_id": run_id,
                "started": now(),
                "current_step": None,
                "steps_started": 0,
                "steps_done": 0,
                "steps_total": total,
            }
            self._write(records)
            return run_id

        self.run_id = self.side.transact(begin)

    def _started(self, step_result):
        progress = self._progress
        progress["steps_started"] += 1
        # Plone's core upgrade adds tasks while it runs (recatalog, roles).
        progress["steps_total"] = max(
            progress["steps_total"], progress["steps_started"]
        )
        progress["current_step"] = _step_ref(step_result)
        self.side.transact(self._write)

    def _ended(self, step_result):
        progress = self._progress
        if step_result.status == "done":
            progress["steps_done"] += 1
        progress["current_step"] = None
        self.side.transact(self._write)

    def _write(self, records):
        records.progress.value = {**self._progress, "updated": now()}
