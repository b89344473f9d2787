"""Progress over HTTP: poll ``GET @upgrade/status`` while a run goes on."""

from plone_upgrade.door import Failure

import threading
import time


STATUS_KEYS = ("state", "current_step", "steps_done", "steps_total")


class StatusWatcher(threading.Thread):
    """Polls ``GET @upgrade/status`` while a run goes on; reports changes.

    Gives up quietly when the server has no status endpoint (404, an answer
    without the expected keys, or no JSON), or after five failed polls.

    :param client: the :class:`.http.Client` (its own session is not shared).
    :param report: called with each new status document.
    :param interval: seconds between polls.
    """

    def __init__(self, client, report, interval=1.0):
        super().__init__(name="plone-upgrade-status", daemon=True)
        self.client = client
        self.report = report
        self.interval = interval
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

    def _status(self, session):
        """The status document; ``None`` when it may come later; raise
        :class:`StopIteration` when there is no status service."""
        try:
            response = self.client.send(
                "GET",
                "@upgrade/status",
                session=session,
                timeout=max(self.interval * 5, 5),
            )
        except Failure:
            return None
        try:
            status = response.json() if response.status_code == 200 else None
        except ValueError:
            status = None
        if not isinstance(status, dict) or not all(
            key in status for key in STATUS_KEYS
        ):
            raise StopIteration
        return status

    def _poll(self, session):
        last = None
        failures = 0
        delay = min(self.interval, 0.5)
        while not self._stop_event.wait(delay) and failures < 5:
            delay = self.interval
            started = time.monotonic()
            try:
                status = self._status(session)
            except StopIteration:
                return
            if status is None:
                failures += 1
                continue
            # Before the run has started, after it has ended, or between two
            # steps: nothing to show.
            state = status["state"]
            shown = state == "committing" or (
                state != "idle" and status["current_step"]
            )
            key = (
                state,
                repr(status["current_step"]),
                status["steps_done"],
                status["steps_total"],
            )
            if shown and key != last and not self._stop_event.is_set():
                last = key
                self.report(status)
            delay = max(0.0, self.interval - (time.monotonic() - started))
