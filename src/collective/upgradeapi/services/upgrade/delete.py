"""DELETE /<site>/@upgrade/lock: break the lock of a run whose process died."""

from collective.upgradeapi.services.base import UpgradeService
from collective.upgradeapi.services.upgrade import runs
from plone.protect.interfaces import IDisableCSRFProtection
from zope.interface import alsoProvides
from zope.interface import implementer
from zope.publisher.interfaces import IPublishTraverse


@implementer(IPublishTraverse)
class UpgradeDelete(UpgradeService):
    """``DELETE /plone/@upgrade/lock[?force=true]``

    Breaks a stale lock (no heartbeat for the configured time): answers
    ``{"@id", "broken": true, "message", "lock"}``; the run it belonged to is
    recorded as ``abandoned``. No lock: 404. A lock that is alive: 409, unless
    ``force=true``.
    """

    def __init__(self, context, request):
        super().__init__(context, request)
        self.params = []

    def publishTraverse(self, request, name):
        self.params.append(name)
        return self

    def reply(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        return runs.reply_delete(self, self.params)
