"""HTTP answers in words: one-line messages for connection and HTTP errors."""

from plone_upgrade.door import Failure

import contextlib


NOT_LOADED = (
    "collective.upgradeapi is not loaded there (install it in the site's "
    "Python environment and restart Zope)"
)


REASONS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("Temporary failure in name resolution", "unknown host"),
    ("getaddrinfo failed", "unknown host"),
    ("No route to host", "no route to host"),
    ("Network is unreachable", "network unreachable"),
    ("Connection reset", "connection reset by the server"),
    ("RemoteDisconnected", "the server closed the connection"),
    ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
)


def reason(exc):
    """A short reason for a connection error: refused, unknown host, ..."""
    text = str(exc)
    for needle, words in REASONS:
        if needle in text:
            return words
    return exc.__class__.__name__


def server_message(response):
    """The ``message`` of a JSON error body, if there is one."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return " ".join(message.split())
    return None


def failure(response, site_url, who, not_found=None):
    """The :class:`Failure` for an HTTP error ``response``.

    :param site_url: the site's URL, as the user gave it.
    :param who: the credentials in words (``user 'admin'``), ``None`` without.
    :param not_found: the message for a 404, if the caller knows better.
    """
    status = response.status_code
    url = response.url
    server = server_message(response)
    body = None
    with contextlib.suppress(ValueError):
        body = response.json()
    document = dict(body) if isinstance(body, dict) else {}
    refused = document.get("type") == "Forbidden" and server is not None
    document.setdefault("type", response.reason or f"HTTP{status}")
    document["status"] = status
    if status == 401:
        if who is None:
            message = (
                "Unauthorized (HTTP 401): no credentials given; use --user "
                "(PLONE_USER) with PLONE_PASSWORD, or --token (PLONE_TOKEN)."
            )
        else:
            message = (
                f"Unauthorized (HTTP 401): {site_url} refused {who}: "
                "wrong password or token, or no 'Manage portal' permission "
                "on this site."
            )
    elif status == 403 and refused:
        # The service's own refusal ({"type": "Forbidden", "message"}):
        # marking steps done or stamping without the permission.
        message = f"Forbidden (HTTP 403): {server}"
    elif status == 403:
        message = (
            f"Forbidden (HTTP 403): {who or 'an anonymous user'} may "
            f"not manage {site_url}; upgrades need the 'Manage portal' "
            "permission."
        )
    elif status == 404:
        message = not_found or (
            f"Not found (HTTP 404): {url}. Is {site_url} the URL of a Plone "
            f"site? If it is, {NOT_LOADED}."
        )
    elif status == 400:
        message = f"Bad request (HTTP 400): {server or response.reason}"
    elif status == 409:
        message = f"Conflict (HTTP 409): {server or response.reason}"
    else:
        message = f"HTTP {status} {response.reason} from {url}" + (
            f": {server}" if server else "."
        )
    document["message"] = message if server is None else server
    return Failure(message, document=document, retry=status in (404, 502, 503, 504))
