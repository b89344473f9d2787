"""HTTP access to a site's ``@upgrade`` services, with one-line error messages.

Nothing here imports Zope or Plone: the client runs anywhere ``requests``
does, for example on a CI runner next to a container.
"""

from importlib import metadata

import contextlib
import requests
import threading
import time


#: Exit codes shared by every command.
OK = 0
FAILED = 1
ERROR = 2

ADDON_KEY = "needs_upgrade"
STATUS_KEYS = ("state", "current_step", "steps_done", "steps_total")

NOT_LOADED = (
    "collective.upgradeapi is not loaded there (install it in the site's "
    "Python environment and restart Zope)"
)


def _user_agent():
    try:
        version = metadata.version("collective.upgradeapi")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"plone-upgrade/{version} python-requests/{requests.__version__}"


class Failure(Exception):
    """A command cannot go on: a one-line ``message`` and an exit code.

    :param message: what went wrong and what to do, on one line.
    :param exit_code: the process exit code, :data:`ERROR` unless told.
    :param document: the JSON document to print with ``--json``; by default
        ``{"type", "message"}``.
    :param retry: whether waiting may help (the site is still starting).
    :param error_type: the ``type`` of the default document.
    """

    def __init__(
        self, message, exit_code=ERROR, document=None, retry=False, error_type="Error"
    ):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.retry = retry
        self.document = document or {"type": error_type, "message": message}


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


def _reason(exc):
    """A short reason for a connection error: refused, unknown host, ..."""
    text = str(exc)
    for needle, reason in REASONS:
        if needle in text:
            return reason
    return exc.__class__.__name__


def _server_message(response):
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


class Client:
    """Talks to one Plone site over HTTP.

    :param url: the site's URL, for example ``http://localhost:8080/Plone``.
    :param auth: ``None``, ``("basic", user, password)`` or ``("token", jwt)``.
    :param timeout: seconds to wait for an answer, ``None`` for no limit.
    """

    def __init__(self, url, auth=None, timeout=None):
        url = url.strip().rstrip("/")
        for suffix in ("/@upgrade", "/@upgrade/"):
            url = url.removesuffix(suffix)
        if "://" not in url:
            url = f"http://{url}"
        self.url = url
        self.auth = auth
        self.timeout = timeout
        #: ``(user, password)`` to trade for a token before the first request.
        self.login_with = None
        self.session = self.new_session()

    @property
    def who(self):
        if self.auth is None:
            return None
        if self.auth[0] == "basic":
            return f"user {self.auth[1]!r}"
        return "the token"

    def new_session(self):
        """A ``requests`` session with this client's headers and credentials."""
        session = requests.Session()
        session.headers.update(
            {"Accept": "application/json", "User-Agent": _user_agent()}
        )
        if self.auth is not None:
            if self.auth[0] == "basic":
                session.auth = (self.auth[1], self.auth[2])
            else:
                session.headers["Authorization"] = f"Bearer {self.auth[1]}"
        return session

    def close(self):
        self.session.close()

    # -- plumbing ----------------------------------------------------------

    def send(self, method, path, session=None, timeout=None, **kwargs):
        """Send one request; return the response or raise :class:`Failure`.

        Connection problems and timeouts become a :class:`Failure` with
        ``retry=True``; HTTP error statuses are left to the caller.
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
            raise Failure(
                f"No answer from {url} within {timeout:g} s (see --timeout).",
                retry=True,
                error_type="Timeout",
            )
        except requests.ConnectionError as exc:
            raise Failure(
                f"Cannot connect to {self.url}: {_reason(exc)}. Is the site "
                "running at this address? (`plone-upgrade wait` waits for it.)",
                retry=True,
                error_type="ConnectionError",
            )
        except requests.RequestException as exc:
            raise Failure(f"Request to {url} failed: {exc}.", error_type="RequestError")

    def failure(self, response, not_found=None):
        """The :class:`Failure` for an HTTP error ``response``.

        :param not_found: the message for a 404, if the caller knows better.
        """
        status = response.status_code
        url = response.url
        server = _server_message(response)
        body = None
        with contextlib.suppress(ValueError):
            body = response.json()
        document = dict(body) if isinstance(body, dict) else {}
        document.setdefault("type", response.reason or f"HTTP{status}")
        document["status"] = status
        if status == 401:
            if self.auth is None:
                message = (
                    "Unauthorized (HTTP 401): no credentials given; use --user "
                    "(PLONE_USER) with PLONE_PASSWORD, or --token (PLONE_TOKEN)."
                )
            else:
                message = (
                    f"Unauthorized (HTTP 401): {self.url} refused {self.who}: "
                    "wrong password or token, or no 'Manage portal' permission "
                    "on this site."
                )
        elif status == 403:
            message = (
                f"Forbidden (HTTP 403): {self.who or 'an anonymous user'} may "
                f"not manage {self.url}; upgrades need the 'Manage portal' "
                "permission."
            )
        elif status == 404:
            message = not_found or (
                f"Not found (HTTP 404): {url}. Is {self.url} the URL of a Plone "
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

    def json(self, response, not_found=None):
        """The JSON body of a 200 answer; raise :class:`Failure` otherwise."""
        if response.status_code != 200:
            raise self.failure(response, not_found=not_found)
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise Failure(
                f"{response.url} did not answer JSON (HTTP 200, {kind}). Is "
                f"{self.url} the URL of a Plone site?",
                retry=True,
                error_type="NotJSON",
            )
        if not isinstance(body, dict):
            raise Failure(
                f"{response.url} answered unexpected JSON.", error_type="NotJSON"
            )
        return body

    # -- the services --------------------------------------------------------

    def login(self, user, password):
        """Trade ``user`` and ``password`` for a JWT (``POST @login``).

        Later requests send the token instead of the password.
        """
        response = self.send(
            "POST", "@login", json={"login": user, "password": password}
        )
        if response.status_code == 401:
            raise Failure(
                f"Unauthorized (HTTP 401): {self.url} refused the login of user "
                f"{user!r}; check the user name and password.",
                error_type="Unauthorized",
            )
        body = self.json(
            response,
            not_found=(
                f"Not found (HTTP 404): {response.url}. Is {self.url} the URL of "
                "a Plone site with plone.restapi?"
            ),
        )
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise Failure(f"{response.url} answered no token.", error_type="NoToken")
        self.auth = ("token", token)
        self.login_with = None
        self.session.auth = None
        self.session.headers["Authorization"] = f"Bearer {token}"
        return token

    def upgrade_info(self, profile=None, timeout=None):
        """``GET @upgrade``: what the site needs; checks the add-on answers it."""
        params = {"profile": profile} if profile else None
        response = self.send("GET", "@upgrade", params=params, timeout=timeout)
        body = self.json(response)
        if ADDON_KEY not in body:
            raise Failure(
                f"{response.url} is plone.restapi's built-in @upgrade service: "
                f"{NOT_LOADED}.",
                error_type="AddonNotLoaded",
            )
        return body

    def run_upgrade(self, body):
        """``POST @upgrade``: return ``(status, document)``.

        200 and 500 ``UpgradeFailed`` answers are returned; every other
        status raises :class:`Failure`.
        """
        response = self.send("POST", "@upgrade", json=body, allow_redirects=False)
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location") or "another address"
            raise Failure(
                f"{response.url} redirects to {location} (HTTP "
                f"{response.status_code}); give the site's final URL with --url.",
                error_type="Redirect",
            )
        if response.status_code == 500:
            try:
                document = response.json()
            except ValueError:
                document = None
            if isinstance(document, dict) and document.get("type") == "UpgradeFailed":
                return 500, document
        document = self.json(response)
        if "steps" not in document:
            raise Failure(
                f"{response.url} answered without per-step results: {NOT_LOADED}.",
                error_type="AddonNotLoaded",
            )
        return 200, document

    def history(self, run_id=None, limit=None):
        """``GET @upgrade/history[/<run_id>]``: the runs the site remembers."""
        path = "@upgrade/history" + (f"/{run_id}" if run_id is not None else "")
        params = {"b_size": limit} if limit else None
        response = self.send("GET", path, params=params)
        not_found = (
            f"This server has no upgrade history (HTTP 404 from {response.url}): "
            "the collective.upgradeapi installed there is older, or the URL is "
            "not a Plone site."
        )
        if response.status_code == 404 and run_id is not None:
            with contextlib.suppress(ValueError):
                if "run_id" in response.json():
                    not_found = f"Not found (HTTP 404): {_server_message(response)}"
        return self.json(response, not_found=not_found)


class StatusWatcher(threading.Thread):
    """Polls ``GET @upgrade/status`` while a run goes on; reports changes.

    Gives up quietly when the server has no status endpoint (404, an answer
    without the expected keys, or no JSON).

    :param client: the :class:`Client` (its own session is not shared).
    :param report: called with each new status document.
    :param interval: seconds between polls.
    """

    def __init__(self, client, report, interval=1.0):
        super().__init__(name="plone-upgrade-status", daemon=True)
        self.client = client
        self.report = report
        self.interval = interval
        self.available = None
        self._stop_event = threading.Event()

    def stop(self):
        self._stop_event.set()
        self.join(timeout=self.interval + 5)

    def run(self):
        session = self.client.new_session()
        try:
            self._poll(session)
        finally:
            session.close()

    def _poll(self, session):
        last = None
        failures = 0
        delay = min(self.interval, 0.5)
        while not self._stop_event.wait(delay):
            delay = self.interval
            started = time.monotonic()
            try:
                response = self.client.send(
                    "GET",
                    "@upgrade/status",
                    session=session,
                    timeout=max(self.interval * 5, 5),
                )
            except Failure:
                failures += 1
                if failures >= 5:
                    return
                continue
            if response.status_code != 200:
                self.available = False
                return
            try:
                status = response.json()
            except ValueError:
                status = None
            if not isinstance(status, dict) or not all(
                key in status for key in STATUS_KEYS
            ):
                self.available = False
                return
            self.available = True
            if self._stop_event.is_set():
                return
            if status.get("state") == "idle" or not status.get("current_step"):
                # Before the run has started, after it has ended, or between
                # two steps.
                continue
            key = (
                status.get("state"),
                repr(status.get("current_step")),
                status.get("steps_done"),
                status.get("steps_total"),
            )
            if key != last:
                last = key
                self.report(status)
            delay = max(0.0, self.interval - (time.monotonic() - started))
