"""DELETE /<site>/@upgrade/lock and /run: break a dead run's lock, cancel a run."""

from collective.upgradeapi import api
from collective.upgradeapi import documents
from collective.upgradeapi.config import SWITCH
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.services.base import service_url
from collective.upgradeapi.services.base import UpgradeService
from collective.upgradeapi.services.errors import shown_lock


class UpgradeDelete(UpgradeService):
    """``DELETE /plone/@upgrade/lock[?force=true]`` and ``DELETE /plone/@upgrade/run``

    ``lock``: breaks a stale lock (its process is gone, or no heartbeat for
    the configured time): answers ``{"@id", "broken": true, "message",
    "lock"}``; the run it belonged to is recorded as ``abandoned``. No lock:
    404. A lock that is alive: 409; with ``force=true``, its run is asked to
    cancel instead (202, ``"broken": false``): a live lock is never broken.

    ``run``: asks the running run to cancel (202, ``{"@id",
    "cancel_requested", "message", "lock"}``); it stops at its next step
    boundary, commits nothing more and releases the lock. No run: 404.
    """

    def reply(self):
        site, url, user = self.context, service_url(self.context), api.current_user()[0]
        if self.params == ["lock"]:
            force = self.request.form.get("force", "")
            if not isinstance(force, str) or force.lower() not in (*SWITCH, ""):
                raise BadInput("'force' must be true or false.")
            done = documents.unlocked(site, url, user, SWITCH.get(force.lower(), False))
        else:  # run
            done = documents.cancelled(site, url, user)
        if not done.get("broken"):
            self.request.response.setStatus(202)
        return {**done, "lock": shown_lock(done["lock"])}
