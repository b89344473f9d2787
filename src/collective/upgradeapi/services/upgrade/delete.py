"""DELETE /<site>/@upgrade/lock and /run: break a dead run's lock, cancel a run."""

from collective.upgradeapi.services import csrf
from collective.upgradeapi.services.base import UpgradeSubPathService
from collective.upgradeapi.services.upgrade import runs
from plone.protect.interfaces import IDisableCSRFProtection
from zope.interface import alsoProvides


class UpgradeDelete(UpgradeSubPathService):
    """``DELETE /plone/@upgrade/lock[?force=true]`` and ``DELETE /plone/@upgrade/run``

    ``lock``: breaks a stale lock (its process is gone, or no heartbeat for
    the configured time): answers ``{"@id", "broken": true, "message",
    "lock"}``; the run it belonged to is recorded as ``abandoned``. No lock:
    404. A lock that is alive: 409; with ``force=true``, its run is asked to
    cancel instead (202, ``"broken": false``): a live lock is never broken.

    ``run``: asks the running run to cancel (202); it stops at its next step
    boundary, commits nothing more and releases the lock. No run: 404.
    """

    def reply(self):
        csrf.check(self.request)
        alsoProvides(self.request, IDisableCSRFProtection)
        return runs.reply_delete(self, self.params)
