"""The HTTP door: a site's ``@upgrade`` services (no Zope, no Plone: it runs
anywhere ``requests`` does, e.g. on a CI runner), and its answers in words."""

from importlib import metadata
from plone_upgrade.door import Failure
from plone_upgrade.door import KINDS
from plone_upgrade.door import refusal
from urllib.parse import unquote
from urllib.parse import urlsplit

import requests
import threading


SERVICE = "@upgrade"
STATUS_KEYS = ("state", "current_step", "steps_done", "steps_total")
VERSION = metadata.version("collective.upgradeapi.client")
USER_AGENT = f"plone-upgrade/{VERSION} python-requests/{requests.__version__}"
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


class Client:
    """The door to a site's URL; ``auth``: ``("basic", user, password)``,
    ``("token", jwt)`` or the URL's credentials (never shown); ``timeout``:
    seconds or ``None``; ``login_with``: ``(user, password)``."""

    def __init__(self, url, auth=None, timeout=None, login_with=None):
        url = url.strip().rstrip("/").removesuffix(f"/{SERVICE}")
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if auth is None and parts.username is not None:
            auth = ("basic", unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.netloc.rpartition("@")[2]
        self.url = self.name = parts._replace(netloc=netloc).geturl()
        self.auth, self.timeout, self.login_with = auth, timeout, login_with
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

    def send(self, method, path, session=None, timeout=None, **kwargs):
        """The response to one request, whatever its status, or a :class:`Failure`."""
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
            reason = found[0] if found else type(exc).__name__
            message = (
                f"Cannot connect to {self.url}: {reason}. Is the site running at "
                "this address? (`plone-upgrade wait` waits for it.)"
            )
            raise Failure(message, retry=True, error_type="ConnectionError")
        except requests.RequestException as exc:
            raise Failure(f"Request to {url} failed: {exc}.", error_type="RequestError")

    def body(self, response):
        """The JSON object ``response`` carries, or a :class:`Failure`."""
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            message = (
                f"{response.url} did not answer JSON (HTTP {response.status_code}, "
                f"{kind}). Is {self.url} the URL of a Plone site?"
            )
            raise Failure(message, retry=True, error_type="NotJSON")
        if isinstance(body, dict):
            return body
        raise Failure(f"{response.url} answered unexpected JSON.", error_type="NotJSON")

    def answer(self, response, what=None):
        """The JSON body of a 200 (or 202) ``response``, or a :class:`Failure`."""
        status = response.status_code
        if status in (200, 202):
            return self.body(response)
        try:
            body = self.body(response)
        except Failure:
            body = {}
        if status in (400, 409) or (status in KINDS and ours(response)):
            raise refusal(status, {"message": response.reason, **body})
        message = self.trouble(response, body, what)
        document = {"type": response.reason, "message": message, **body}
        retry = status in (404, 502, 503, 504)
        raise Failure(message, {**document, "status": status}, retry=retry)

    def trouble(self, response, body, what):
        """An HTTP error but the service's own refusals, in words; ``what``: the
        service, for a 404 (this server has no upgrade WHAT)."""
        status, who = response.status_code, None
        if self.auth is not None:
            who = f"user {self.auth[1]!r}" if self.auth[0] == "basic" else "the token"
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
        if status == 404 and what:
            return (
                f"This server has no upgrade {what} (HTTP 404 from {response.url}): "
                f"{OLDER}, or the URL is not a Plone site."
            )
        if status == 404:
            return (
                f"Not found (HTTP 404): {response.url}. Is {self.url} the URL of a "
                f"Plone site? If it is, {NOT_LOADED}."
            )
        if 300 <= status < 400:  # a POST is not sent again elsewhere
            location = response.headers.get("Location") or "another address"
            return (
                f"{response.url} redirects to {location} (HTTP {status}); give the "
                "site's final URL with --url."
            )
        server = " ".join(str(body.get("message") or "").split())
        return f"HTTP {status} {response.reason} from {response.url}" + (
            f": {server}" if server else "."
        )

    def login(self, user, password):
        """Trade ``user`` and ``password`` for a JWT (``POST @login``)."""
        self.login_with = None
        body = {"login": user, "password": password}
        response = self.send("POST", "@login", json=body)
        if response.status_code == 401:
            message = (
                f"Unauthorized (HTTP 401): {self.url} refused the login of user "
                f"{user!r}; check the user name and password."
            )
            raise Failure(message, error_type="Unauthorized")
        token = self.answer(response).get("token")
        if not isinstance(token, str) or not token:
            raise Failure(f"{response.url} answered no token.", error_type="NoToken")
        self.auth = ("token", token)
        self.session.auth = None
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, what=None, **kwargs):
        """``GET path``'s answer; when ``GET @upgrade`` is not ours, what it is."""
        response = self.send("GET", path, **kwargs)
        if ours(response):
            self.verified = True
        elif response.status_code not in (401, 403):
            root = response if path == SERVICE else self.send("GET", SERVICE)
            if root.status_code == 200 and not ours(root):
                message = impostor(root, self.body(root))
                raise Failure(message, error_type="NotUpgradeService")
        return self.answer(response, what)

    def verify(self):
        """Before a request that writes: make sure it reaches collective.upgradeapi."""
        if not self.verified:
            self.upgrade_info(timeout=self.timeout or 60.0)

    def upgrade_info(self, profile=None, timeout=None):
        params = {"profile": profile} if profile else None
        return self.get(SERVICE, params=params, timeout=timeout)

    def upgrade(self, body, on_progress=None, interval=1.0):
        """``POST @upgrade`` of a run or a stamp (see :meth:`watch`): ``(200,
        answer)``, or ``(500, error)`` when a step failed."""
        self.verify()  # before the status is polled: logs in once
        stop = threading.Event()
        watcher = threading.Thread(
            target=self.watch, args=(on_progress, interval, stop), daemon=True
        )
        if on_progress is not None:
            watcher.start()
        try:
            response = self.send("POST", SERVICE, json=body, allow_redirects=False)
            if response.status_code == 500:
                failed = self.body(response)
                if failed.get("type") == "UpgradeFailed":
                    return 500, failed
            return 200, self.answer(response)
        except Failure as failure:
            if failure.document.get("type") == "Timeout" and "stamp" not in body:
                failure.message += (
                    " The run may still be going on at the server: `plone-upgrade "
                    "check` tells later whether the site is up to date."
                )
            raise
        finally:
            stop.set()
            if watcher.is_alive():
                watcher.join(timeout=interval + 5)

    def watch(self, report, interval, stop):
        """Poll ``GET @upgrade/status`` until ``stop``, ``report`` each new step;
        give up quietly without a status service or after five failed polls."""
        last, failures, delay = None, 0, min(interval, 0.5)
        with self.new_session() as session:
            while not stop.wait(delay) and failures < 5:
                delay = interval
                try:
                    path, timeout = f"{SERVICE}/status", max(interval * 5, 5)
                    status = self.send("GET", path, session, timeout).json()
                except Failure:
                    failures += 1
                    continue
                except ValueError:
                    return
                if not isinstance(status, dict) or not set(STATUS_KEYS) <= set(status):
                    return
                key = tuple(repr(status[name]) for name in STATUS_KEYS)
                # Before the run, after it, between two steps: nothing to show.
                state, step = status["state"], status["current_step"]
                shown = state == "committing" or (state != "idle" and step)
                if shown and key != last and not stop.is_set():
                    last = key
                    report(status)

    def history(self, run_id=None, limit=None):
        path = f"{SERVICE}/history" + (f"/{run_id}" if run_id is not None else "")
        return self.get(path, "history", params={"b_size": limit} if limit else None)

    def lock(self):
        """The lock as ``GET @upgrade/lock`` shows it, or ``None``."""
        return self.get(f"{SERVICE}/lock", "lock service").get("lock")

    def delete(self, path, params=None):
        """``DELETE @upgrade/<path>`` if there is a lock: the answer, or ``None``."""
        if self.lock() is None:
            return None  # else the lock service of collective.upgradeapi answered
        response = self.send("DELETE", f"{SERVICE}/{path}", params=params)
        return None if response.status_code == 404 else self.answer(response)

    def unlock(self, force):
        return self.delete("lock", {"force": "true"} if force else None)

    def cancel(self):
        return self.delete("run")
