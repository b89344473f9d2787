"""The JSON answer of a raised :class:`collective.upgradeapi.errors.UpgradeError`.

Registered as the exception view of REST requests for that class (more
specific than plone.rest's view for every exception), so the answer has the
error's own status and body, while Zope's failure path runs as for any
exception: the transaction is aborted, ``IPubFailure`` subscribers (the error
log) see it, no after-success hook runs.
"""

from collective.upgradeapi.errors import UpgradeError
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
