"""One Plone site opened in this process: the in-process :class:`Door`.

:class:`SiteDoor` answers what ``plone_upgrade.http.Client`` answers over
HTTP, with the same documents (:mod:`collective.upgradeapi.documents`) and
the same errors, through the engine API (:mod:`collective.upgradeapi.api`).
"""

from collective.upgradeapi import api
from collective.upgradeapi import documents
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.services.upgrade import body as request_body
from plone_upgrade.door import Door
from plone_upgrade.door import Failure

import contextlib
import transaction


#: What an error is called, by its HTTP status, as over HTTP (without it).
KINDS = {400: "Bad request", 403: "Forbidden", 404: "Not found", 409: "Conflict"}


@contextlib.contextmanager
def refusals(none_if_unknown=False):
    """Turn the engine's :class:`.errors.UpgradeError` into a
    :class:`plone_upgrade.door.Failure` whose document is the HTTP door's:
    the error's body and its HTTP status.

    :param none_if_unknown: let a 404 (no lock, no run) pass silently.
    """
    try:
        yield
    except UpgradeError as error:
        if none_if_unknown and isinstance(error, UnknownResource):
            return
        kind = KINDS.get(error.status, error.error_type)
        message = " ".join(str(error.message).split())
        raise Failure(
            f"{kind}: {message}", document={**error.body(), "status": error.status}
        )


class Progress:
    """A listener of the run (see :func:`.api.upgrade`): reports a status
    document shaped like ``GET @upgrade/status`` as each step starts and when
    the run commits.

    :param report: called with the status document.
    :param only: the ids of the chosen steps, if steps were chosen.
    """

    def __init__(self, report, only=None):
        self.report = report
        self.only = set(only or ()) or None
        self.total = self.started = self.done = 0

    def __call__(self, event, payload):
        if event == "plan":
            pending = [step for plan in payload for step in plan.pending]
            self.total = len([s for s in pending if not self.only or s.id in self.only])
        elif event == "start":
            self.started += 1
            # Plone's core upgrade adds tasks while it runs (recatalog, roles).
            self.total = max(self.total, self.started)
            self._report("running", payload.task.ref())
        elif event == "end" and payload.status in ("done", "marked_done"):
            self.done += 1
        elif event == "commit":
            self._report("committing", None)

    def _report(self, state, step):
        self.report(
            {
                "state": state,
                "current_step": step,
                "steps_done": self.done,
                "steps_total": self.total,
            }
        )


class SiteDoor(Door):
    """The in-process door to ``site``.

    :param site: the Plone site, acquisition-wrapped with a request.
    :param user: who runs upgrades, for the history and the transaction.
    """

    def __init__(self, site, user):
        self.site = site
        self.user = user
        self.name = "/".join(site.getPhysicalPath()) or "/"
        self.service_url = f"{site.absolute_url()}/@upgrade"

    def upgrade_info(self, profile=None):
        with refusals():
            return documents.pending(self.site, self.service_url, profile)

    def prepare_run(self):
        """Nothing to check: this process runs this package's engine."""

    def upgrade(self, body, on_progress=None, interval=None):
        listeners = []
        with refusals():
            # Read as the service reads "profiles" and "steps" of POST @upgrade.
            selection = request_body.selection(body)
            if on_progress is not None:
                listeners.append(Progress(on_progress, selection.steps))
            result = api.upgrade(
                self.site,
                selection,
                dry_run=body.get("dry_run", False),
                user=self.user,
                listeners=listeners,
                commit=body.get("commit", "run"),
                mark_done=body.get("mark_done", False),
            )
            transaction.begin()
            answer = documents.run_result(self.site, result, self.service_url)
            failure = documents.run_failure(result, answer)
        if failure is not None:
            return failure.status, failure.body()
        return 200, answer

    def stamp(self, profile_ids):
        with refusals():
            result = api.stamp(self.site, profile_ids, user=self.user)
            transaction.begin()
            return documents.run_result(self.site, result, self.service_url)

    def history(self, run_id=None, limit=None):
        with refusals():
            if run_id is not None:
                return documents.history_entry(self.site, self.service_url, run_id)
            request = self.site.REQUEST
            request.form.update({"b_size": str(limit)} if limit else {})
            request["QUERY_STRING"] = f"b_size={limit}" if limit else ""
            request["ACTUAL_URL"] = f"{self.service_url}/history"
            return documents.history_listing(self.site, self.service_url, request)

    def lock(self):
        transaction.abort()
        transaction.begin()  # the newest committed state
        return api.lock_info(self.site)

    def unlock(self, force):
        with refusals(none_if_unknown=True):
            return documents.unlocked(self.site, self.service_url, self.user, force)

    def cancel(self):
        with refusals(none_if_unknown=True):
            return documents.cancelled(self.site, self.service_url, self.user)

    def close(self):
        """Nothing to close: :mod:`.inprocess` closes the database."""
