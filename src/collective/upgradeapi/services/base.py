"""What the upgrade services share: the error shape and the site's URL."""

from AccessControl import getSecurityManager
from plone.restapi.services import Service
from zope.interface import implementer
from zope.publisher.interfaces import IPublishTraverse


class BadInput(ValueError):
    """A request that cannot be served as sent: answered 400, nothing runs.

    :param message: what is wrong and what to do instead.
    :param details: extra keys for the error body.
    """

    def __init__(self, message, error_type="BadRequest", **details):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.details = details


class UpgradeService(Service):
    """Base for the ``@upgrade`` services of the site root."""

    @property
    def service_url(self):
        return f"{self.context.absolute_url()}/@upgrade"

    def error(self, status, error_type, message, **details):
        """Set ``status`` and return the error body plone.rest also renders.

        :returns: ``{"type", "message", **details}``
        """
        self.request.response.setStatus(status)
        return {"type": error_type, "message": message, **details}

    def current_user(self):
        """The id of the authenticated user."""
        user = getSecurityManager().getUser()
        return user.getId() or user.getUserName()


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
