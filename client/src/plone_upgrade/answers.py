"""HTTP answers in words: who answered, and one-line messages for errors."""

from plone_upgrade.door import Failure
from plone_upgrade.door import KINDS
from plone_upgrade.door import refusal


#: Every answer of collective.upgradeapi's services carries this header;
#: plone.restapi's own ``@upgrade`` and content named ``@upgrade`` do not.
HEADER = ("X-Upgrade-Service", "collective.upgradeapi")
NOT_LOADED = (
    "collective.upgradeapi is not loaded there (install it in the site's "
    "Python environment and restart Zope)"
)
OLDER = "the collective.upgradeapi installed there is older"
#: Connection errors in words: what the error's text contains, what it means.
REASONS = {
    "Connection refused": "connection refused",
    "Name or service not known": "unknown host",
    "nodename nor servname": "unknown host",
    "Temporary failure in name resolution": "unknown host",
    "No route to host": "no route to host",
    "Network is unreachable": "network unreachable",
    "Connection reset": "connection reset by the server",
    "RemoteDisconnected": "the server closed the connection",
    "CERTIFICATE_VERIFY_FAILED": "its TLS certificate is not trusted",
}


def reason(exc):
    """A connection error in words: refused, unknown host, ..."""
    found = [words for text, words in REASONS.items() if text in str(exc)]
    return found[0] if found else type(exc).__name__


def ours(response):
    """Whether collective.upgradeapi's service gave ``response``."""
    return response.headers.get(HEADER[0]) == HEADER[1]


def impostor(response, body):
    """What answered ``GET @upgrade`` instead of collective.upgradeapi, in words."""
    if "@type" in body:
        return (
            f"GET {response.url} answered a {body['@type']} ({body.get('title')!r}), "
            "not the upgrade service: content named @upgrade shadows it. Nothing "
            "was changed; rename or remove that content."
        )
    if "needs_upgrade" in body:
        return f"{response.url} answers without {HEADER[0]}: {OLDER} than this client."
    return f"{response.url} is plone.restapi's built-in @upgrade service: {NOT_LOADED}."


def failure(client, response, body, not_found=None):
    """The :class:`Failure` for an HTTP error ``response`` of ``client``, whose
    JSON ``body`` is read; ``not_found``: the message for a 404."""
    status = response.status_code
    if status in (400, 409) or (status in KINDS and ours(response)):
        return refusal(status, {"message": response.reason, **body})
    who = None
    if client.auth is not None:
        who = f"user {client.auth[1]!r}" if client.auth[0] == "basic" else "the token"
    if status == 401 and who is None:
        message = (
            "Unauthorized (HTTP 401): no credentials given; use --user "
            "(PLONE_USER) with PLONE_PASSWORD, or --token (PLONE_TOKEN)."
        )
    elif status == 401:
        message = (
            f"Unauthorized (HTTP 401): {client.url} refused {who}: wrong password "
            "or token, or no 'Manage portal' permission on this site."
        )
    elif status == 403:
        message = (
            f"Forbidden (HTTP 403): {who or 'an anonymous user'} may not manage "
            f"{client.url}; upgrades need the 'Manage portal' permission."
        )
    elif status == 404:
        message = not_found or (
            f"Not found (HTTP 404): {response.url}. Is {client.url} the URL of a "
            f"Plone site? If it is, {NOT_LOADED}."
        )
    elif 300 <= status < 400:  # a POST is not sent again elsewhere
        location = response.headers.get("Location") or "another address"
        message = (
            f"{response.url} redirects to {location} (HTTP {status}); give the "
            "site's final URL with --url."
        )
    else:
        server = " ".join(str(body.get("message") or "").split())
        message = f"HTTP {status} {response.reason} from {response.url}" + (
            f": {server}" if server else "."
        )
    document = {"type": response.reason, "message": message, **body}
    retry = status in (404, 502, 503, 504)
    return Failure(message, {**document, "status": status}, retry=retry)
