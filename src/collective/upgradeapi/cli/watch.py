"""Progress over HTTP: poll ``GET @upgrade/status`` while a run goes on."""

from collective.upgradeapi.cli.failure import Failure

import threading
import time


STATUS_KEYS = ("state", "current_step", "steps_done", "steps_total")


class StatusWatcher(threading.Thread):
    """Polls ``GET @upgrade/status`` while a run goes on; reports changes.

    Gives up quietly when the server has no status endpoint (404, an answer
    without the expected keys, or no JSON).

    :param client: the :class:`Client` (its own session is not shared).
    :param report: called with each new status document.
    :param interval: seconds between polls.
    """

    def __init__(self, client, report, interval=1.0):
        super().__init__(name="plone-upgrade-status", daemon=True)
        self.client = client
        self.report = report
        self.interval = interval
        self.available = None
        self._stop_event = threading.Event()

    def stop(self):
        self._stop_event.set()
        self.join(timeout=self.interval + 5)

    def run(self):
        session = self.client.new_session()
        try:
            self._poll(session)
        finally:
            session.close()

    def _poll(self, session):
        last = None
        failures = 0
        delay = min(self.interval, 0.5)
        while not self._stop_event.wait(delay):
            delay = self.interval
            started = time.monotonic()
            try:
                response = self.client.send(
                    "GET",
                    "@upgrade/status",
                    session=session,
                    timeout=max(self.interval * 5, 5),
                )
            except Failure:
                failures += 1
                if failures >= 5:
                    return
                continue
            if response.status_code != 200:
                self.available = False
                return
            try:
                status = response.json()
            except ValueError:
                status = None
            if not isinstance(status, dict) or not all(
                key in status for key in STATUS_KEYS
            ):
                self.available = False
                return
            self.available = True
            if self._stop_event.is_set():
                return
            state = status.get("state")
            if state == "idle" or (
                not status.get("current_step") and state != "committing"
            ):
                # Before the run has started, after it has ended, or between
                # two steps.
                continue
            key = (
                status.get("state"),
                repr(status.get("current_step")),
                status.get("steps_done"),
                status.get("steps_total"),
            )
            if key != last:
                last = key
                self.report(status)
            delay = max(0.0, self.interval - (time.monotonic() - started))
