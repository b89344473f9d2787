"""``@upgrade`` keeps its place at the site root.

plone.rest looks a name up as content first, as a service second, and Plone
accepts ``@upgrade`` as a content id: a folder of that name would answer in
the API's place. Three rules keep the name this package's:

- No content takes the name of a REST service at the site root:
  :func:`refuse_reserved_id` subscribes to OFS's ``IObjectWillBeMovedEvent``,
  which every add, copy, move and rename notifies before it changes anything
  (plone.restapi's POST, the classic forms and the ZMI, WebDAV, ``invokeFactory``,
  ``plone.api``, ``manage_renameObject``, ``manage_pasteObjects``). It refuses
  ``@upgrade`` and any ``@``-id that names a REST service registered for the
  site root (``@search``, ``@login``...): 400, nothing is changed.
- The service wins over content made before this package was installed:
  :class:`SiteRootTraverse`, plone.rest's traversal of the site root, looks
  ``@upgrade`` up as a service only.
- What no service answers (WebDAV and other methods, no JSON asked for) meets
  :class:`OtherMethods`, the view named ``@upgrade``: a JSON 405 with
  ``Allow`` (406 for an allowed method without ``Accept: application/json``,
  404 for an unknown sub-path), raised while the URL is traversed, so nothing
  is called, before authentication.
"""

from collective.upgradeapi.errors import NotAcceptable
from collective.upgradeapi.errors import ReservedName
from collective.upgradeapi.services.base import allowed
from collective.upgradeapi.services.base import refusal
from collective.upgradeapi.services.base import SERVICE_HEADER
from OFS.interfaces import IObjectWillBeMovedEvent
from plone.base.interfaces import IPloneSiteRoot
from plone.rest.interfaces import IAPIRequest
from plone.rest.negotiation import lookup_service_id
from plone.rest.traverse import RESTTraverse
from zope.component import adapter
from zope.component import getSiteManager
from zope.globalrequest import getRequest
from zope.interface import alsoProvides
from zope.interface import implementer
from zope.interface import Interface
from zope.interface import providedBy
from zope.publisher.interfaces.browser import IBrowserPublisher
from zope.publisher.interfaces.browser import IDefaultBrowserLayer
from ZPublisher.BaseRequest import DefaultPublishTraverse


NAME = "@upgrade"

#: The methods whose REST services a content id at the site root would hide.
SERVICE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def as_json(request):
    """Answer ``request`` as the API answers: JSON (see ``services.errors``)."""
    if request is not None and not IAPIRequest.providedBy(request):
        alsoProvides(request, IAPIRequest)


def service_methods(site, name):
    """The methods of the REST services named ``name`` at ``site``'s root.

    Looked up for the current request's layers (the default layer when there
    is no request, as in a script).
    """
    request = getRequest()
    layers = IDefaultBrowserLayer if request is None else providedBy(request)
    adapters = getSiteManager(site).adapters
    methods = []
    for method in SERVICE_METHODS:
        service_id = lookup_service_id(method, "application/json")
        if service_id and adapters.lookup(
            (providedBy(site), layers), Interface, service_id + name
        ):
            methods.append(method)
    return methods


@adapter(Interface, IObjectWillBeMovedEvent)
def refuse_reserved_id(obj, event):
    """Refuse content named like a REST service of the site root.

    :raises ReservedName: before anything is added, copied, moved or renamed.
    """
    name = event.newName
    if not name or name[:1] != "@" or not IPloneSiteRoot.providedBy(event.newParent):
        return
    methods = service_methods(event.newParent, name)
    if not methods:
        return
    request = getRequest()
    if request is not None and request.get("REQUEST_METHOD") not in ("GET", "POST"):
        as_json(request)  # WebDAV's MOVE, COPY, PUT, MKCOL: not a browser form
    raise ReservedName(name, methods)


class _NoContentNamedLikeTheAPI(DefaultPublishTraverse):
    def publishTraverse(self, request, name):
        if name == NAME:
            raise KeyError(name)
        return super().publishTraverse(request, name)


@adapter(IPloneSiteRoot, IAPIRequest)
class SiteRootTraverse(RESTTraverse, _NoContentNamedLikeTheAPI):
    """plone.rest's traversal of a Plone site root, where ``@upgrade`` is
    never content: plone.rest finds no object of that name and looks up the
    service (or, for a method no service answers, :class:`OtherMethods`)."""


@implementer(IBrowserPublisher)
class OtherMethods:
    """``@upgrade`` and its sub-paths for what no service answers.

    Collects the sub-path, then refuses at its end (see the module).
    """

    def __init__(self, context, request):
        self.context = context
        self.request = request
        self.path = []

    def publishTraverse(self, request, name):
        self.path.append(name)
        return self

    def browserDefault(self, request):
        raise self.refusal()

    def refusal(self):
        as_json(self.request)
        method = (self.request.get("REQUEST_METHOD") or "GET").upper()
        if method in (allowed(self.path) or ()):
            resource = "/".join([NAME, *self.path])
            error = NotAcceptable(
                f"{resource[:200]} answers JSON only: send 'Accept: "
                "application/json'. Nothing was done."
            )
        else:
            error = refusal(method, self.path)
        error.headers[SERVICE_HEADER] = "collective.upgradeapi"
        return error
