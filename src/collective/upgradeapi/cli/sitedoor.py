"""One Plone site opened in this process: what a command needs of its site.

:class:`SiteDoor` answers what :class:`.client.Client` answers over HTTP,
with the same documents (:mod:`collective.upgradeapi.documents`) and the
same errors, through the engine API (:mod:`collective.upgradeapi.api`).
"""

from collective.upgradeapi import api
from collective.upgradeapi import documents
from collective.upgradeapi.cli.failure import Failure
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.services.upgrade import body as request_body

import functools
import transaction


#: What an error is called, by its HTTP status, as over HTTP (without it).
KINDS = {400: "Bad request", 403: "Forbidden", 404: "Not found", 409: "Conflict"}


def refusal(error):
    """The :class:`.failure.Failure` for an :class:`.errors.UpgradeError`.

    Its document is the HTTP door's: the error's body and its HTTP status.
    """
    kind = KINDS.get(error.status, error.error_type)
    message = " ".join(str(error.message).split())
    return Failure(
        f"{kind}: {message}", document={**error.body(), "status": error.status}
    )


def _refused(method):
    """Turn the engine's :class:`.errors.UpgradeError` into a Failure."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except UpgradeError as error:
            raise refusal(error)

    return wrapper


class Progress:
    """A listener of the run (see :func:`.api.upgrade`): the current step.

    Calls ``report`` with a status document shaped like ``GET
    @upgrade/status`` when a step starts.
    """

    def __init__(self, report, only=None):
        self.report = report
        self.only = set(only or ()) or None
        self.total = 0
        self.started = 0
        self.done = 0

    def __call__(self, event, payload):
        if event == "plan":
            self.total = sum(
                1
                for plan in payload
                for step in plan.pending
                if self.only is None or step.id in self.only
            )
        elif event == "start":
            self.started += 1
            # Plone's core upgrade adds tasks while it runs (recatalog, roles).
            self.total = max(self.total, self.started)
            status = {
                "state": "running",
                "current_step": payload.task.ref(),
                "steps_done": self.done,
                "steps_total": self.total,
            }
            self.report(status)
        elif event == "end" and payload.status in ("done", "marked_done"):
            self.done += 1
        elif event == "commit":
            self.report(
                {
                    "state": "committing",
                    "current_step": None,
                    "steps_done": self.done,
                    "steps_total": self.total,
                }
            )


class SiteDoor:
    """The in-process door to ``site``.

    :param site: the Plone site, acquisition-wrapped with a request.
    :param user: who runs upgrades, for the history and the transaction.
    """

    def __init__(self, site, user):
        self.site = site
        self.user = user
        #: How messages name the site: its path in the database.
        self.name = "/".join(site.getPhysicalPath()) or "/"
        self.service_url = f"{site.absolute_url()}/@upgrade"

    @_refused
    def upgrade_info(self, profile=None):
        """What ``GET @upgrade[?profile=ID]`` answers."""
        return documents.pending(self.site, self.service_url, profile)

    def prepare_run(self):
        """Nothing to check: this process runs this package's engine."""

    @_refused
    def upgrade(self, body, on_progress=None, interval=None):
        """Run what ``POST @upgrade`` with ``body`` runs.

        :param on_progress: called with a status document as each step starts.
        :param interval: not used (over HTTP: the pause between two polls).
        :returns: ``(200, answer)``, or ``(500, error body)`` when a step failed.
        """
        # Read as the service reads "profiles" and "steps" of POST @upgrade.
        selection = request_body.selection(body)
        listeners = []
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

    @_refused
    def stamp(self, profile_ids):
        """What ``POST @upgrade`` with ``{"stamp": profile_ids}`` answers."""
        result = api.stamp(self.site, profile_ids, user=self.user)
        transaction.begin()
        return documents.run_result(self.site, result, self.service_url)

    @_refused
    def history(self, run_id=None, limit=None):
        """What ``GET @upgrade/history[/<run_id>]?b_size=LIMIT`` answers."""
        if run_id is not None:
            return documents.history_entry(self.site, self.service_url, run_id)
        request = self.site.REQUEST
        query = f"b_size={limit}" if limit else ""
        request.form.update({"b_size": str(limit)} if limit else {})
        request["QUERY_STRING"] = query
        request["ACTUAL_URL"] = f"{self.service_url}/history"
        return documents.history_listing(self.site, self.service_url, request)

    def close(self):
        """Nothing to close: :mod:`.inprocess` closes the database."""
