"""The JSON answer of a raised :class:`collective.upgradeapi.errors.UpgradeError`.

Registered as the exception view of REST requests for that class (more
specific than plone.rest's view for every exception), so the answer has the
error's own status and body, while Zope's failure path runs as for any
exception: the transaction is aborted, ``IPubFailure`` subscribers (the error
log) see it, no after-success hook runs.
"""

from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import UpgradeError
from plone.rest.errors import ErrorHandling
from plone.rest.interfaces import IAPIRequest
from plone.rest.interfaces import ICORSPolicy
from Products.Five.browser import BrowserView
from zope.component import adapter
from zope.component import queryMultiAdapter

import json


@adapter(UpgradeError, IAPIRequest)
class UpgradeErrorView(BrowserView):
    """Renders ``{"type", "message", **details}`` with the error's status."""

    def __call__(self):
        error = self.context
        policy = queryMultiAdapter((self.context, self.request), ICORSPolicy)
        if policy is not None:
            policy.process_simple_request()
        response = self.request.response
        response.setHeader("Content-Type", "application/json")
        response.setStatus(error.status, lock=1)
        response.setBody(json.dumps(error.body(), indent=2, sort_keys=True), lock=1)
        return None


@adapter(RecursionError, IAPIRequest)
class DeepBodyView(ErrorHandling):
    """A JSON body nested too deeply to decode, sent to ``@upgrade``: 400.

    plone.restapi's token plugin decodes every JSON body while authenticating,
    before any service runs, and lets Python's ``RecursionError`` through.
    For ``@upgrade`` requests that is bad input; any other request gets
    plone.rest's answer, as without this package.
    """

    def __call__(self):
        decoding = "decoding a JSON" in str(self.context)
        if not (decoding and "/@upgrade" in self.request.get("PATH_INFO", "")):
            return super().__call__()
        error = BadInput("The body is nested too deeply to be an @upgrade request.")
        return UpgradeErrorView(error, self.request)()
