"""The HTTP door: a site's ``@upgrade`` services, with one-line error messages.

Nothing here imports Zope or Plone: the client runs anywhere ``requests``
does, for example on a CI runner next to a container.
"""

from importlib import metadata
from plone_upgrade import answers
from plone_upgrade.door import Door
from plone_upgrade.door import Failure
from plone_upgrade.watch import StatusWatcher
from urllib.parse import unquote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import contextlib
import requests


ADDON_KEY = "needs_upgrade"
NO_SERVICE = (
    "This server has no upgrade {what} (HTTP 404 from {url}): the "
    "collective.upgradeapi installed there is older, or the URL is not a "
    "Plone site."
)
USER_AGENT = (
    f"plone-upgrade/{metadata.version('collective.upgradeapi.client')} "
    f"python-requests/{requests.__version__}"
)


def _without_credentials(url):
    """``(url, auth)``: the URL without ``user:password@``, and them as auth."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    clean = urlunsplit(parts._replace(netloc=netloc))
    auth = ("basic", unquote(parts.username or ""), unquote(parts.password or ""))
    return clean, auth


class Client(Door):
    """Talks to one Plone site over HTTP: the :class:`.door.Door` of a URL.

    :param url: the site's URL, for example ``http://localhost:8080/Plone``.
    :param auth: ``None``, ``("basic", user, password)`` or ``("token", jwt)``.
    :param timeout: seconds to wait for an answer, ``None`` for no limit.
    """

    def __init__(self, url, auth=None, timeout=None):
        url = url.strip().rstrip("/").removesuffix("/@upgrade")
        if "://" not in url:
            url = f"http://{url}"
        url, in_url = _without_credentials(url)
        #: The URL; :attr:`name`: the site as messages name it.
        self.url = self.name = url
        # Credentials written in the URL are used (unless others were given)
        # but never shown: messages name the URL without them.
        self.auth = auth if auth is not None else in_url
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
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        if self.auth is not None:
            if self.auth[0] == "basic":
                session.auth = (self.auth[1], self.auth[2])
            else:
                session.headers["Authorization"] = f"Bearer {self.auth[1]}"
        return session

    def close(self):
        self.session.close()

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
                f"Cannot connect to {self.url}: {answers.reason(exc)}. Is the site "
                "running at this address? (`plone-upgrade wait` waits for it.)",
                retry=True,
                error_type="ConnectionError",
            )
        except requests.RequestException as exc:
            raise Failure(f"Request to {url} failed: {exc}.", error_type="RequestError")

    def json(self, response, not_found=None):
        """The JSON body of a 200 answer; raise :class:`Failure` otherwise."""
        if response.status_code != 200:
            raise answers.failure(response, self.url, self.who, not_found)
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

    def _service(self, response, key):
        """The JSON body of a 200 answer with ``key``, from this add-on."""
        body = self.json(response)
        if key not in body:
            what = {"steps": "without per-step results", "profiles": "without profiles"}
            raise Failure(
                f"{response.url} answered {what[key]}: {answers.NOT_LOADED}.",
                error_type="AddonNotLoaded",
            )
        return body

    def upgrade_info(self, profile=None, timeout=None):
        """``GET @upgrade``: what the site needs; checks the add-on answers it."""
        params = {"profile": profile} if profile else None
        response = self.send("GET", "@upgrade", params=params, timeout=timeout)
        body = self.json(response)
        if ADDON_KEY not in body:
            raise Failure(
                f"{response.url} is plone.restapi's built-in @upgrade service: "
                f"{answers.NOT_LOADED}.",
                error_type="AddonNotLoaded",
            )
        return body

    def prepare_run(self):
        """Make sure that ``POST @upgrade`` reaches this add-on's service.

        plone.restapi's built-in service would ignore ``profiles`` and
        ``steps`` and run the core upgrade instead.
        """
        self.upgrade_info(timeout=self.timeout or 60.0)

    def _post(self, body):
        """``POST @upgrade``; a redirect raises :class:`Failure` (a POST must
        not be sent again elsewhere)."""
        response = self.send("POST", "@upgrade", json=body, allow_redirects=False)
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location") or "another address"
            raise Failure(
                f"{response.url} redirects to {location} (HTTP "
                f"{response.status_code}); give the site's final URL with --url.",
                error_type="Redirect",
            )
        return response

    def _run(self, body):
        response = self._post(body)
        if response.status_code == 500:
            with contextlib.suppress(ValueError):
                document = response.json()
                if isinstance(document, dict) and document.get("type") == (
                    "UpgradeFailed"
                ):
                    return 500, document
        return 200, self._service(response, "steps")

    def upgrade(self, body, on_progress=None, interval=1.0):
        """``POST @upgrade`` while a :class:`.watch.StatusWatcher` reports progress.

        :returns: ``(200, answer)`` or ``(500, UpgradeFailed body)``; every
            other answer raises :class:`Failure`.
        """
        watcher = None
        if on_progress is not None:
            watcher = StatusWatcher(self, on_progress, interval=interval)
            watcher.start()
        try:
            return self._run(body)
        except Failure as failure:
            if failure.document.get("type") == "Timeout":
                failure.message += (
                    " The run may still be going on at the server: `plone-upgrade "
                    "check` tells later whether the site is up to date."
                )
            raise
        finally:
            if watcher is not None:
                watcher.stop()

    def stamp(self, profile_ids):
        """``POST @upgrade`` with ``{"stamp": [...]}``: the answer of a success."""
        return self._service(self._post({"stamp": list(profile_ids)}), "profiles")

    def history(self, run_id=None, limit=None):
        """``GET @upgrade/history[/<run_id>]``: the runs the site remembers."""
        path = "@upgrade/history" + (f"/{run_id}" if run_id is not None else "")
        params = {"b_size": limit} if limit else None
        response = self.send("GET", path, params=params)
        not_found = NO_SERVICE.format(what="history", url=response.url)
        if response.status_code == 404 and run_id is not None:
            with contextlib.suppress(ValueError):
                if "run_id" in response.json():
                    message = answers.server_message(response)
                    not_found = f"Not found (HTTP 404): {message}"
        return self.json(response, not_found=not_found)

    def lock(self):
        """``GET @upgrade/lock``: the lock, or ``None``."""
        response = self.send("GET", "@upgrade/lock")
        body = self.json(
            response, not_found=NO_SERVICE.format(what="lock service", url=response.url)
        )
        return body.get("lock")

    def _delete(self, path, **params):
        """``DELETE @upgrade/<path>`` if there is a lock: the answer, or ``None``."""
        if self.lock() is None:
            return None
        response = self.send("DELETE", f"@upgrade/{path}", params=params or None)
        if response.status_code == 404:
            return None
        if response.status_code not in (200, 202):
            raise answers.failure(response, self.url, self.who)
        return response.json()

    def unlock(self, force):
        """``DELETE @upgrade/lock[?force=true]``, or ``None`` without a lock."""
        return self._delete("lock", **({"force": "true"} if force else {}))

    def cancel(self):
        """``DELETE @upgrade/run``, or ``None`` without a run."""
        return self._delete("run")
