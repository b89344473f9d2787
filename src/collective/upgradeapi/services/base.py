"""What the upgrade services share: the site's URL, the resources and the
methods they answer, refusals, the answer of a run."""

from collective.upgradeapi import documents
from collective.upgradeapi.engine.txn import run_for_request
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.errors import WrongMethod
from collective.upgradeapi.services import csrf
from collective.upgradeapi.services import errors
from plone.protect.interfaces import IDisableCSRFProtection
from plone.restapi.services import Service
from zope.interface import alsoProvides
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


def service_url(site):
    """The URL of ``site``'s ``@upgrade`` service."""
    return f"{site.absolute_url()}/@upgrade"


def answer_run(request, site, call):
    """The answer of ``POST @upgrade`` for the run ``call()`` (an
    :func:`.api.upgrade`); when a step failed, its error (500) is raised.

    What steps queue for after a successful request (cache purges) is dropped
    unless the run committed (:func:`.engine.txn.run_for_request`).
    """
    result = run_for_request(request, call)
    body = documents.run_result(site, result, service_url(site))
    failure = documents.run_failure(result, body)
    if failure is not None:
        raise failure
    return body


#: The methods each resource under ``@upgrade`` answers: its ``Allow``.
ALLOWED = {
    "": ("GET", "POST"),
    "status": ("GET",),
    "history": ("GET",),
    "history/<id>": ("GET",),
    "lock": ("GET", "DELETE"),
    "run": ("DELETE",),
}
SUB_PATHS = "status, history, history/<id>, lock and run (DELETE: cancel)"


def allowed(params):
    """The methods ``@upgrade/<params>`` answers, or ``None``: no such resource."""
    history_id = params[:1] == ["history"] and len(params) == 2
    return ALLOWED.get("history/<id>" if history_id else "/".join(params))


def refusal(method, params):
    """What ``method`` on ``@upgrade/<params>`` gets when that resource does
    not answer it: 404 (no such resource) or 405 (with ``Allow``)."""
    allow = allowed(params)
    if allow is None:
        return UnknownResource(
            f"There is no @upgrade/{'/'.join(params)}. Available: @upgrade/{SUB_PATHS}."
        )
    return WrongMethod(method, "/".join(["@upgrade", *params]), allow)


#: The response header by which a client knows it talks to this add-on's
#: service, and not to plone.restapi's or to content named ``@upgrade``.
SERVICE_HEADER = "X-Upgrade-Service"


@implementer(IPublishTraverse)
class UpgradeService(AnswersRefusals, Service):
    """Base for the ``@upgrade`` services of the site root.

    The path segments after ``@upgrade`` (``@upgrade/status``) are collected
    in :attr:`params`.
    """

    def __init__(self, context, request):
        super().__init__(context, request)
        self.params = []

    def publishTraverse(self, request, name):
        self.params.append(name)
        return self

    def render(self):
        self.request.response.setHeader(SERVICE_HEADER, "collective.upgradeapi")
        return super().render()

    def check_permission(self):
        """plone.restapi's check, then the refusals of a cross-site request
        (:func:`.csrf.check`) and of a method the resource does not answer."""
        super().check_permission()
        csrf.check(self.request)
        method = self.request.get("REQUEST_METHOD", "GET").upper()
        if method not in (allowed(self.params) or ()):
            raise refusal(method, self.params)
        if method not in csrf.SAFE_METHODS:
            alsoProvides(self.request, IDisableCSRFProtection)
