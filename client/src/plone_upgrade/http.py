"""The HTTP door: a site's ``@upgrade`` services, with one-line error messages.

Nothing here imports Zope or Plone: the client runs anywhere ``requests``
does, for example on a CI runner next to a container.
"""

from importlib import metadata
from plone_upgrade.door import Door
from plone_upgrade.door import Failure
from plone_upgrade.door import KINDS
from plone_upgrade.door import refusal
from urllib.parse import unquote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import requests
import threading


SERVICE = "@upgrade"
#: Every answer of collective.upgradeapi's services carries this header;
#: plone.restapi's own ``@upgrade`` and content named ``@upgrade`` do not.
HEADER = ("X-Upgrade-Service", "collective.upgradeapi")
NOT_LOADED = (
    "collective.upgradeapi is not loaded there (install it in the site's "
    "Python environment and restart Zope)"
)
NO_SERVICE = (
    "This server has no upgrade {what} (HTTP 404 from {url}): the "
    "collective.upgradeapi installed there is older, or the URL is not a "
    "Plone site."
)
STATUS_KEYS = ("state", "current_step", "steps_done", "steps_total")
USER_AGENT = (
    f"plone-upgrade/{metadata.version('collective.upgradeapi.client')} "
    f"python-requests/{requests.__version__}"
)
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


def ours(response):
    """Whether collective.upgradeapi's service gave ``response``."""
    return response.headers.get(HEADER[0]) == HEADER[1]


def impostor(response, body):
    """What answered ``GET @upgrade`` instead of collective.upgradeapi, in words."""
    url = response.url
    if "@type" in body:
        return (
            f"GET {url} answered a {body['@type']} ({body.get('title')!r}), not "
            "the upgrade service: content named @upgrade shadows it. Nothing was "
            "changed; rename or remove that content."
        )
    if "needs_upgrade" in body:
        return (
            f"{url} answered without the header {HEADER[0]}: the "
            "collective.upgradeapi installed there is older than this client."
        )
    return f"{url} is plone.restapi's built-in @upgrade service: {NOT_LOADED}."


class Client(Door):
    """Talks to one Plone site over HTTP: the :class:`.door.Door` of a URL.

    :param url: the site's URL, for example ``http://localhost:8080/Plone``.
    :param auth: ``None``, ``("basic", user, password)`` or ``("token", jwt)``;
        by default the credentials written in the URL, which messages never show.
    :param timeout: seconds to wait for an answer, ``None`` for no limit.
    """

    def __init__(self, url, auth=None, timeout=None):
        url = url.strip().rstrip("/").removesuffix(f"/{SERVICE}")
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if auth is None and parts.username is not None:
            auth = ("basic", unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.netloc.rpartition("@")[2]
        #: The URL; :attr:`name`: the site as messages name it.
        self.url = self.name = urlunsplit(parts._replace(netloc=netloc))
        self.auth = auth
        self.timeout = timeout
        #: ``(user, password)`` to trade for a token before the first request.
        self.login_with = None
        #: Whether collective.upgradeapi's service answered in this session.
        self.verified = False
        self.session = self.new_session()

    def new_session(self):
        """A ``requests`` session with this client's headers and credentials."""
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        if self.auth is not None and self.auth[0] == "basic":
            session.auth = self.auth[1:]
        elif self.auth is not None:
            session.headers["Authorization"] = f"Bearer {self.auth[1]}"
        return session

    def close(self):
        self.session.close()

    def send(self, method, path, session=None, timeout=None, **kwargs):
        """Send one request; return the response, whatever its status.

        Connection problems and timeouts raise a :class:`Failure` with
        ``retry=True``.
        """
        if self.login_with is not None and path != "@login":
            self.login(*self.login_with)
        url = f"{self.url}/{path}"
        timeout = self.timeout if timeout is None else timeout
        try:
            return (session or self.session).request(
                method, url, timeout=timeout, **kwargs
            )
        except requests.Timeout:
            message = f"No answer from {url} within {timeout:g} s (see --timeout)."
            raise Failure(message, retry=True, error_type="Timeout")
        except requests.ConnectionError as exc:
            found = [words for text, words in REASONS.items() if text in str(exc)]
            raise Failure(
                f"Cannot connect to {self.url}: {(found or [type(exc).__name__])[0]}. "
                "Is the site running at this address? (`plone-upgrade wait` waits "
                "for it.)",
                retry=True,
                error_type="ConnectionError",
            )
        except requests.RequestException as exc:
            raise Failure(f"Request to {url} failed: {exc}.", error_type="RequestError")

    def body(self, response):
        """The JSON object ``response`` carries, or a :class:`Failure`."""
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise Failure(
                f"{response.url} did not answer JSON (HTTP {response.status_code}, "
                f"{kind}). Is {self.url} the URL of a Plone site?",
                retry=True,
                error_type="NotJSON",
            )
        if not isinstance(body, dict):
            raise Failure(
                f"{response.url} answered unexpected JSON.", error_type="NotJSON"
            )
        return body

    def refused(self, response, not_found=None):
        """The :class:`Failure` for an HTTP error ``response``."""
        status = response.status_code
        try:
            body = self.body(response)
        except Failure:
            body = {}
        if status in (400, 409) or (status in KINDS and ours(response)):
            return refusal(status, {"message": response.reason, **body})
        message = self._error(response, body.get("message"), not_found)
        document = {"type": response.reason or f"HTTP{status}", "message": message}
        document = {**document, **body, "status": status}
        return Failure(message, document, retry=status in (404, 502, 503, 504))

    def _error(self, response, server, not_found):
        """The message for an HTTP error that is not the service's refusal."""
        status, who = response.status_code, self.who()
        if status == 401 and who is None:
            return (
                "Unauthorized (HTTP 401): no credentials given; use --user "
                "(PLONE_USER) with PLONE_PASSWORD, or --token (PLONE_TOKEN)."
            )
        if status == 401:
            return (
                f"Unauthorized (HTTP 401): {self.url} refused {who}: wrong password "
                "or token, or no 'Manage portal' permission on this site."
            )
        if status == 403:
            return (
                f"Forbidden (HTTP 403): {who or 'an anonymous user'} may not manage "
                f"{self.url}; upgrades need the 'Manage portal' permission."
            )
        if status == 404:
            return not_found or (
                f"Not found (HTTP 404): {response.url}. Is {self.url} the URL of a "
                f"Plone site? If it is, {NOT_LOADED}."
            )
        server = " ".join(str(server or "").split())
        return f"HTTP {status} {response.reason} from {response.url}" + (
            f": {server}" if server else "."
        )

    def who(self):
        """The credentials in words, ``None`` without."""
        if self.auth is None:
            return None
        return f"user {self.auth[1]!r}" if self.auth[0] == "basic" else "the token"

    def login(self, user, password):
        """Trade ``user`` and ``password`` for a JWT (``POST @login``)."""
        self.login_with = None
        response = self.send(
            "POST", "@login", json={"login": user, "password": password}
        )
        if response.status_code == 401:
            raise Failure(
                f"Unauthorized (HTTP 401): {self.url} refused the login of user "
                f"{user!r}; check the user name and password.",
                error_type="Unauthorized",
            )
        if response.status_code != 200:
            raise self.refused(
                response,
                f"Not found (HTTP 404): {response.url}. Is {self.url} the URL of a "
                "Plone site with plone.restapi?",
            )
        token = self.body(response).get("token")
        if not isinstance(token, str) or not token:
            raise Failure(f"{response.url} answered no token.", error_type="NoToken")
        self.auth = ("token", token)
        self.session.auth = None
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, not_found=None, **kwargs):
        """``GET path``: the answer of collective.upgradeapi's service.

        An answer without its header (:data:`HEADER`) is looked at: when
        ``GET @upgrade`` answers something else (content named ``@upgrade``,
        plone.restapi's own service), the :class:`Failure` says what.
        """
        response = self.send("GET", path, **kwargs)
        if ours(response):
            self.verified = True
        elif response.status_code not in (401, 403):
            root = response if path == SERVICE else self.send("GET", SERVICE)
            if root.status_code == 200 and not ours(root):
                message = impostor(root, self.body(root))
                raise Failure(message, error_type="NotUpgradeService")
        return self.answer(response, not_found)

    def answer(self, response, not_found=None):
        """The JSON body of a 200 ``response``; a :class:`Failure` otherwise."""
        if response.status_code != 200:
            raise self.refused(response, not_found)
        return self.body(response)

    def verify(self):
        """Before the first request that writes: make sure that
        collective.upgradeapi answers here, not content named ``@upgrade``
        or plone.restapi's own ``@upgrade`` (which would run the core upgrade
        whatever was asked)."""
        if not self.verified:
            self.upgrade_info(timeout=self.timeout or 60.0)

    def upgrade_info(self, profile=None, timeout=None):
        params = {"profile": profile} if profile else None
        return self.get(SERVICE, params=params, timeout=timeout)

    def _post(self, body):
        """``POST @upgrade`` once verified; a redirect is refused (a POST must
        not be sent again elsewhere)."""
        self.verify()
        response = self.send("POST", SERVICE, json=body, allow_redirects=False)
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location") or "another address"
            raise Failure(
                f"{response.url} redirects to {location} (HTTP "
                f"{response.status_code}); give the site's final URL with --url.",
                error_type="Redirect",
            )
        return response

    def upgrade(self, body, on_progress=None, interval=1.0):
        self.verify()  # before the status is polled: logs in once
        stop = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(on_progress, interval, stop), daemon=True
        )
        if on_progress is not None:
            watcher.start()
        try:
            response = self._post(body)
            if response.status_code == 500:
                failed = self.body(response)
                if failed.get("type") == "UpgradeFailed":
                    return 500, failed
            return 200, self.answer(response)
        except Failure as failure:
            if failure.document.get("type") == "Timeout":
                failure.message += (
                    " The run may still be going on at the server: `plone-upgrade "
                    "check` tells later whether the site is up to date."
                )
            raise
        finally:
            stop.set()
            if watcher.is_alive():
                watcher.join(timeout=interval + 5)

    def _watch(self, report, interval, stop):
        """Poll ``GET @upgrade/status`` until ``stop``; ``report`` each new step.

        Gives up quietly without a status service (404, other keys, no JSON)
        or after five failed polls.
        """
        last, failures, delay = None, 0, min(interval, 0.5)
        with self.new_session() as session:
            while not stop.wait(delay) and failures < 5:
                delay = interval
                try:
                    response = self.send(
                        "GET", f"{SERVICE}/status", session, max(interval * 5, 5)
                    )
                except Failure:
                    failures += 1
                    continue
                try:
                    status = response.json() if response.status_code == 200 else None
                except ValueError:
                    return
                if not isinstance(status, dict) or not set(STATUS_KEYS) <= set(status):
                    return
                key = tuple(repr(status[name]) for name in STATUS_KEYS)
                state = status["state"]
                # Before the run, after it, between two steps: nothing to show.
                shown = state == "committing" or (
                    state != "idle" and status["current_step"]
                )
                if shown and key != last and not stop.is_set():
                    last = key
                    report(status)

    def stamp(self, profile_ids):
        return self.answer(self._post({"stamp": list(profile_ids)}))

    def history(self, run_id=None, limit=None):
        path = f"{SERVICE}/history" + (f"/{run_id}" if run_id is not None else "")
        params = {"b_size": limit} if limit else None
        url = f"{self.url}/{path}"
        return self.get(path, NO_SERVICE.format(what="history", url=url), params=params)

    def lock(self):
        url = f"{self.url}/{SERVICE}/lock"
        what = NO_SERVICE.format(what="lock service", url=url)
        return self.get(f"{SERVICE}/lock", what).get("lock")

    def _delete(self, path, **params):
        """``DELETE @upgrade/<path>`` if there is a lock: the answer, or ``None``."""
        if self.lock() is None:
            return None
        self.verify()
        response = self.send("DELETE", f"{SERVICE}/{path}", params=params or None)
        if response.status_code == 404:
            return None
        if response.status_code == 202:
            return self.body(response)
        return self.answer(response)

    def unlock(self, force):
        return self._delete("lock", **({"force": "true"} if force else {}))

    def cancel(self):
        return self._delete("run")
