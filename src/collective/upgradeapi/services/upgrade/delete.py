"""DELETE /<site>/@upgrade/lock: break the lock of a run whose process died."""

from collective.upgradeapi.services import csrf
from collective.upgradeapi.services.base import UpgradeSubPathService
from collective.upgradeapi.services.upgrade import runs
from plone.protect.interfaces import IDisableCSRFProtection
from zope.interface import alsoProvides


class UpgradeDelete(UpgradeSubPathService):
    """``DELETE /plone/@upgrade/lock[?force=true]``

    Breaks a stale lock (no heartbeat for the configured time): answers
    ``{"@id", "broken": true, "message", "lock"}``; the run it belonged to is
    recorded as ``abandoned``. No lock: 404. A lock that is alive: 409, unless
    ``force=true``.
    """

    def reply(self):
        csrf.check(self.request)
        alsoProvides(self.request, IDisableCSRFProtection)
        return runs.reply_delete(self, self.params)
