"""What the upgrade services share: the site's URL, the user, raised errors."""

from collective.upgradeapi import api
from plone.restapi.services import Service
from zope.interface import implementer
from zope.publisher.interfaces import IPublishTraverse


class UpgradeService(Service):
    """Base for the ``@upgrade`` services of the site root.

    Errors are raised as :class:`collective.upgradeapi.errors.UpgradeError`;
    :mod:`.errors` renders them.
    """

    @property
    def service_url(self):
        return f"{self.context.absolute_url()}/@upgrade"

    def current_user(self):
        """The id of the authenticated user."""
        return api.current_user()[0]


@implementer(IPublishTraverse)
class UpgradeSubPathService(UpgradeService):
    """An ``@upgrade`` service that takes sub-paths (``@upgrade/status``).

    The path segments after ``@upgrade`` are collected in :attr:`params`.
    """

    def __init__(self, context, request):
        super().__init__(context, request)
        self.params = []

    def publishTraverse(self, request, name):
        self.params.append(name)
        return self
