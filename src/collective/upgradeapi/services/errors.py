"""The one answer of a raised :class:`collective.upgradeapi.errors.UpgradeError`.

:func:`render` answers the refusals (4xx) of the services; :class:`ErrorView`,
the exception view for every request, answers the rest after Zope's failure
path (failures, and what the classic doors and the write hold raise). REST
requests get ``{"type", "message", **details}`` as JSON, other requests (a
browser form was the door) a short HTML page.
"""

from collective.upgradeapi.errors import BREAK
from collective.upgradeapi.errors import CANCEL
from collective.upgradeapi.errors import FOLLOW
from collective.upgradeapi.errors import LIST
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

#: The hints of :class:`UpgradeError` (:attr:`.errors.UpgradeError.hints`) over HTTP.
HOW = {
    FOLLOW: "Follow the run with GET @upgrade/status.",
    CANCEL: "A Manager can cancel it with DELETE @upgrade/run (plone-upgrade "
    "cancel; DELETE @upgrade/lock?force=true does the same).",
    BREAK: "A Manager can break the lock with DELETE @upgrade/lock "
    "(plone-upgrade unlock); its run is recorded as abandoned.",
    LIST: "GET @upgrade lists the installed profiles and their pending steps "
    "with their ids.",
}
STUCK = (
    " The run stops at its next step boundary, commits nothing more and "
    "releases the lock. A run stuck inside one step stops when its Zope "
    "process is stopped or restarted."
)


def said(error):
    """``error``'s message followed by its hints, in HTTP terms."""
    return " ".join([error.message, *(HOW[hint] for hint in error.hints)])


def shown_lock(lock):
    """``lock`` (:meth:`.tracking.state.RunState.lock`) with ``how_to_break``."""
    if lock is None:
        return None
    how = HOW[BREAK] if lock["stale"] else HOW[CANCEL] + STUCK
    return {**lock, "how_to_break": how}


def body(error):
    """The JSON answer of ``error``, in HTTP terms."""
    data = {**error.body(), "message": said(error)}
    if isinstance(data.get("lock"), dict):
        data["lock"] = shown_lock(data["lock"])
    return data


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
        text = json.dumps(body(error), indent=2, sort_keys=True)
    else:
        response.setHeader("Content-Type", "text/html; charset=utf-8")
        title = escape(TITLES.get(error.status, "The request was refused"))
        text = PAGE.format(title=title, message=escape(said(error), quote=False))
    if request.get("REQUEST_METHOD") == "HEAD":
        text = ""  # an answer to HEAD has no body; waitress would send it
    response.setBody(text, lock=1)


@adapter(UpgradeError, Interface)
class ErrorView(BrowserView):
    """The exception view of :class:`UpgradeError`: :func:`render`."""

    def __call__(self):
        render(self.context, self.request)
