"""What the upgrade services share: the site's URL, the user, raised errors."""

from collective.upgradeapi import api
from collective.upgradeapi.errors import UpgradeError
from plone.restapi.services import Service
from zope.interface import implementer
from zope.publisher.interfaces import IPublishTraverse

import json


class AnswersRefusals:
    """A REST service mixin: refusals are answered, failures raised.

    Errors are raised as :class:`collective.upgradeapi.errors.UpgradeError`.
    A refusal (4xx: bad input, the lock is held, no such run) is answered
    here: nothing ran, so it is no failure of the site and stays out of its
    error log. A failure (5xx: a step failed) goes on to Zope's failure path,
    where :mod:`.errors` renders it.
    """

    def render(self):
        try:
            return super().render()
        except UpgradeError as error:
            if error.status >= 500:
                raise
            response = self.request.response
            response.setStatus(error.status)
            response.setHeader("Content-Type", "application/json")
            return json.dumps(error.body(), indent=2, sort_keys=True)


class UpgradeService(AnswersRefusals, Service):
    """Base for the ``@upgrade`` services of the site root."""

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
