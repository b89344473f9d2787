"""One Plone site opened in this process: :class:`SiteDoor` answers what the
HTTP door does, with the same documents (:mod:`..documents`) and errors,
through the engine API (:mod:`..api`)."""

from collective.upgradeapi import api
from collective.upgradeapi import documents
from collective.upgradeapi.errors import BREAK
from collective.upgradeapi.errors import CANCEL
from collective.upgradeapi.errors import FOLLOW
from collective.upgradeapi.errors import LIST
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.services.upgrade import body as request_body
from plone_upgrade.door import Door
from plone_upgrade.door import refusal

import contextlib
import transaction


#: The hints of an :class:`.errors.UpgradeError` in the command line's terms.
HOW = {
    FOLLOW: "`plone-upgrade history` shows the run once it has ended.",
    CANCEL: "`plone-upgrade cancel` cancels it.",
    BREAK: "`plone-upgrade unlock` breaks the lock; its run is recorded as abandoned.",
    LIST: "`plone-upgrade plan` lists the pending steps with their ids.",
}
#: What ``POST @upgrade`` takes besides the selection, as :func:`.api.upgrade` does.
OPTIONS = ("dry_run", "commit", "mark_done", "changes", "hold_writes")


@contextlib.contextmanager
def refusals(none_if_unknown=False):
    """The engine's :class:`.errors.UpgradeError` as the client's ``Failure``,
    its hints in words; ``none_if_unknown``: no lock, no run, no error."""
    try:
        yield
    except UpgradeError as error:
        if not (none_if_unknown and isinstance(error, UnknownResource)):
            said = " ".join([error.message, *(HOW[hint] for hint in error.hints)])
            body = {**error.body(), "message": said}
            raise refusal(error.status, body, http=False) from None


class Progress:
    """A listener of the run (see :func:`.api.upgrade`): reports a status
    document shaped like ``GET @upgrade/status``'s as each step starts and
    when the run commits; ``only``: the ids of the chosen steps."""

    def __init__(self, report, only=None):
        self.report, self.only, self.started = report, set(only or ()), 0
        self.status = {"current_step": None, "steps_done": 0, "steps_total": 0}

    def __call__(self, event, payload):
        status = self.status
        if event == "plan":
            steps = [step for plan in payload for step in plan.pending]
            steps = [s for s in steps if not self.only or s.id in self.only]
            status["steps_total"] = len(steps)
        elif event == "start":
            # Plone's core upgrade adds tasks while it runs (recatalog, roles).
            self.started += 1
            status["steps_total"] = max(status["steps_total"], self.started)
            self.report(
                {**status, "state": "running", "current_step": payload.task.ref()}
            )
        elif event == "end" and payload.status in ("done", "marked_done"):
            status["steps_done"] += 1
        elif event == "commit":
            self.report({**status, "state": "committing"})


class SiteDoor(Door):
    """The in-process door to ``site`` (acquisition-wrapped with a request);
    ``user`` runs the upgrades, for the history and the transaction."""

    def __init__(self, site, user):
        self.site = site
        self.user = user
        self.name = "/".join(site.getPhysicalPath()) or "/"
        self.service_url = f"{site.absolute_url()}/@upgrade"

    def upgrade_info(self, profile=None):
        with refusals():
            return documents.pending(self.site, self.service_url, profile)

    def upgrade(self, body, on_progress=None, interval=None):
        with refusals():
            # Read as the service reads "profiles" and "steps" of POST @upgrade.
            selection = request_body.selection(body)
            progress = [Progress(on_progress, selection.steps)] if on_progress else []
            given = {key: body[key] for key in OPTIONS if key in body}
            result = api.upgrade(
                self.site, selection, user=self.user, listeners=progress, **given
            )
            transaction.begin()
            answer = documents.run_result(self.site, result, self.service_url)
            failure = documents.run_failure(result, answer)
        return (200, answer) if failure is None else (failure.status, failure.body())

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
