"""What the upgrade services share: the site's URL, the user, refusals."""

from collective.upgradeapi import api
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.services import errors
from plone.restapi.services import Service
from zope.interface import implementer
from zope.publisher.interfaces import IPublishTraverse

import transaction


class AnswersRefusals:
    """A REST service mixin: refusals are answered, failures raised.

    A refusal (an :class:`~collective.upgradeapi.errors.UpgradeError` of
    status 4xx: bad input, the lock is held, no such run) is no failure of the
    site: it is answered here, stays out of the error log, and the request's
    transaction is aborted. A failure (5xx) goes on to Zope's failure path.
    Both are rendered by :func:`.errors.render`.
    """

    def render(self):
        try:
            return super().render()
        except UpgradeError as error:
            if error.status >= 500:
                raise
            transaction.doom()
            errors.render(error, self.request)
            return None


#: The response header by which a client knows it talks to this add-on's
#: service, and not to plone.restapi's or to content named ``@upgrade``.
SERVICE_HEADER = "X-Upgrade-Service"


class UpgradeService(AnswersRefusals, Service):
    """Base for the ``@upgrade`` services of the site root."""

    def render(self):
        self.request.response.setHeader(SERVICE_HEADER, "collective.upgradeapi")
        return super().render()

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
