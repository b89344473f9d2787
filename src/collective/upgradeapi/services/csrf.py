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

Clients that send an ``Authorization`` header (basic auth, a JWT bearer token:
Volto, curl, ``plone-upgrade``) need neither: a cross-site page cannot make a
browser add that header without a preflight.
"""

from collective.upgradeapi.errors import UpgradeError
from plone.protect.authenticator import check as check_token
from zExceptions import Forbidden


SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


class CSRFRefused(UpgradeError):
    """An unsafe request with cookie credentials, no JSON, no token: 403."""

    status = 403
    error_type = "Forbidden"


def _authorization(request):
    # Zope keeps the Authorization header out of the environment.
    return getattr(request, "_auth", None) or request.getHeader("Authorization")


def _json(request):
    content_type = request.getHeader("Content-Type") or ""
    return content_type.split(";")[0].strip().lower() == "application/json"


def _token(request):
    try:
        check_token(request)
    except Forbidden:
        return False
    return True


def check(request):
    """Refuse (403) an unsafe request that a cross-site page could have sent.

    Nothing to do for safe methods, for requests with an ``Authorization``
    header, with ``Content-Type: application/json``, or with a valid
    plone.protect token.

    :raises CSRFRefused: otherwise; nothing has run yet.
    """
    method = (request.get("REQUEST_METHOD") or "GET").upper()
    if method in SAFE_METHODS or _authorization(request) or _json(request):
        return
    if _token(request):
        return
    raise CSRFRefused(
        f"This {method} request is authenticated by a cookie and has neither "
        "'Content-Type: application/json' nor a valid CSRF token, so another "
        "web site could have made your browser send it (cross-site request "
        "forgery). Nothing was run. Send a JSON body with 'Content-Type: "
        "application/json', or Plone's CSRF token in the 'X-CSRF-TOKEN' "
        "header; clients that authenticate with an 'Authorization' header "
        "(basic auth, a JWT bearer token) need neither."
    )
