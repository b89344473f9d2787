"""Cross-site request forgery: unsafe requests sent with ambient credentials.

A browser adds cookies (Plone's ``__ac`` login cookie) to any request, even
one another web site makes it send. A cross-site page can send a POST with
``Content-Type: text/plain`` (or a form) without asking the site first; so a
request that changes something and is authenticated by a cookie must show it
was made on purpose:

- ``Content-Type: application/json``: a browser sends a cross-site request
  with that type only after a CORS preflight the site must allow; or
- a valid plone.protect token, in the ``X-CSRF-TOKEN`` header or an
  ``_authenticator`` parameter (as Plone's own forms send it).

Clients authenticated by their ``Authorization`` header (basic auth, a JWT
bearer token: Volto, curl, ``plone-upgrade``) need neither: a cross-site page
cannot make a browser add that header without a preflight. What counts is
what authenticated the request, not which headers it has: the user folder
that authenticated the user must find the same user in the header's
credentials alone. A cookie session with an ``Authorization`` header that
authenticates no one (``Basic Ym9ndXM6Ym9ndXM=``, ``Bearer garbage``), or
someone else, is a cookie session.
"""

from AccessControl import getSecurityManager
from AccessControl.userfolder import BasicUserFolder
from Acquisition import aq_inner
from Acquisition import aq_parent
from collective.upgradeapi.errors import UpgradeError
from io import BytesIO
from plone.protect.authenticator import check as check_token
from Products.PluggableAuthService.PluggableAuthService import PluggableAuthService
from zExceptions import BadRequest
from zExceptions import Forbidden
from ZPublisher.HTTPRequest import HTTPRequest
from ZPublisher.HTTPResponse import HTTPResponse


SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


class CSRFRefused(UpgradeError):
    """An unsafe request with cookie credentials, no JSON, no token: 403."""

    status = 403
    error_type = "Forbidden"


def _header_user_ids(folder, header, request):
    """The ids of the users ``header`` alone authenticates in ``folder``."""
    if isinstance(folder, PluggableAuthService):
        # Only the header: no cookie, no form, no client address.
        bare = HTTPRequest(
            BytesIO(),
            {
                "SERVER_NAME": "localhost",
                "SERVER_PORT": "80",
                "HTTP_AUTHORIZATION": header,
            },
            HTTPResponse(),
        )
        return {user_id for user_id, _ in folder._extractUserIds(bare, folder.plugins)}
    if isinstance(folder, BasicUserFolder):
        try:
            name, password = folder.identify(header)
        except BadRequest:
            return set()
        user = folder.authenticate(name, password, request) if name else None
        return {user.getId()} if user is not None else set()
    return set()


def _authenticated_by_header(request):
    """Whether the request's user was authenticated by its ``Authorization``
    header: the user folder that authenticated the user finds that user in
    the header's credentials alone."""
    # Zope keeps the Authorization header out of the environment.
    header = getattr(request, "_auth", None)
    if not header:
        return False
    user = getSecurityManager().getUser()
    folder = aq_parent(aq_inner(user))
    return folder is not None and user.getId() in _header_user_ids(
        folder, header, request
    )


def check(request):
    """Refuse (403) an unsafe request that a cross-site page could have sent.

    Nothing to do for safe methods, for requests with ``Content-Type:
    application/json``, whose user was authenticated by their
    ``Authorization`` header, or with a valid plone.protect token.

    :raises CSRFRefused: otherwise; nothing has run yet.
    """
    method = (request.get("REQUEST_METHOD") or "GET").upper()
    content_type = (request.getHeader("Content-Type") or "").split(";")[0]
    if method in SAFE_METHODS or content_type.strip().lower() == "application/json":
        return
    if _authenticated_by_header(request):
        return
    try:
        check_token(request)  # plone.protect's token
    except Forbidden:
        raise CSRFRefused(
            f"This {method} request is authenticated by a cookie and has neither "
            "'Content-Type: application/json' nor a valid CSRF token, so another "
            "web site could have made your browser send it (cross-site request "
            "forgery). Nothing was run. Send a JSON body with 'Content-Type: "
            "application/json', or Plone's CSRF token in the 'X-CSRF-TOKEN' "
            "header. Clients whose 'Authorization' header authenticates them "
            "(basic auth, a JWT bearer token) need neither; a header that "
            "authenticates no one, or another user, does not count."
        ) from None
