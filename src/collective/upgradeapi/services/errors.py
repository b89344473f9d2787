"""The one answer of a raised :class:`collective.upgradeapi.errors.UpgradeError`.

:func:`render` answers the refusals (4xx) of the services; :class:`ErrorView`,
the exception view for every request, answers the rest after Zope's failure
path (failures, and what the classic doors and the write hold raise). REST
requests get ``{"type", "message", **details}`` as JSON, other requests (a
browser form was the door) a short HTML page.
"""

from collective.upgradeapi.errors import UpgradeError
from html import escape
from plone.rest.interfaces import IAPIRequest
from plone.rest.interfaces import ICORSPolicy
from Products.Five.browser import BrowserView
from zope.component import adapter
from zope.component import queryMultiAdapter
from zope.interface import Interface

import json


PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>{message}</p>
</body>
</html>
"""

TITLES = {409: "An upgrade is running", 503: "An upgrade is running: try again"}


def render(error, request):
    """Set ``error``'s status, headers and body on the response, locked."""
    response = request.response
    response.setStatus(error.status, lock=1)
    for name, value in error.headers.items():
        response.setHeader(name, value)
    if IAPIRequest.providedBy(request):
        policy = queryMultiAdapter((error, request), ICORSPolicy)
        if policy is not None:
            policy.process_simple_request()
        response.setHeader("Content-Type", "application/json")
        body = json.dumps(error.body(), indent=2, sort_keys=True)
    else:
        response.setHeader("Content-Type", "text/html; charset=utf-8")
        title = escape(TITLES.get(error.status, "The request was refused"))
        body = PAGE.format(title=title, message=escape(error.message, quote=False))
    response.setBody(body, lock=1)


@adapter(UpgradeError, Interface)
class ErrorView(BrowserView):
    """The exception view of :class:`UpgradeError`: :func:`render`."""

    def __call__(self):
        render(self.context, self.request)
