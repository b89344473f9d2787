"""The HTTP door: a site's ``@upgrade`` services (no Zope, no Plone: it runs
anywhere ``requests`` does, e.g. on a CI runner)."""

from importlib import metadata
from plone_upgrade import answers
from plone_upgrade.answers import ours
from plone_upgrade.door import Door
from plone_upgrade.door import Failure
from urllib.parse import unquote
from urllib.parse import urlsplit

import requests
import threading


SERVICE = "@upgrade"
STATUS_KEYS = ("state", "current_step", "steps_done", "steps_total")
VERSION = metadata.version("collective.upgradeapi.client")
USER_AGENT = f"plone-upgrade/{VERSION} python-requests/{requests.__version__}"


class Client(Door):
    """The :class:`.door.Door` of a site's URL; ``auth``: ``("basic", user,
    password)``, ``("token", jwt)`` or by default the credentials in the URL
    (which messages never show); ``timeout``: seconds, ``None`` for no limit."""

    def __init__(self, url, auth=None, timeout=None):
        url = url.strip().rstrip("/").removesuffix(f"/{SERVICE}")
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if auth is None and parts.username is not None:
            auth = ("basic", unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.netloc.rpartition("@")[2]
        self.url = self.name = parts._replace(netloc=netloc).geturl()
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
        """The response to one request, whatever its status; connection
        problems and timeouts raise a :class:`Failure` with ``retry``."""
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
            raise Failure(
                f"Cannot connect to {self.url}: {answers.reason(exc)}. "
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
        if isinstance(body, dict):
            return body
        raise Failure(f"{response.url} answered unexpected JSON.", error_type="NotJSON")

    def answer(self, response, not_found=None):
        """The JSON body of a 200 (or 202) ``response``; else a :class:`Failure`
        (see :func:`.answers.failure`)."""
        if response.status_code in (200, 202):
            return self.body(response)
        try:
            body = self.body(response)
        except Failure:
            body = {}
        raise answers.failure(self, response, body, not_found)

    def login(self, user, password):
        """Trade ``user`` and ``password`` for a JWT (``POST @login``)."""
        self.login_with = None
        body = {"login": user, "password": password}
        response = self.send("POST", "@login", json=body)
        if response.status_code == 401:
            raise Failure(
                f"Unauthorized (HTTP 401): {self.url} refused the login of user "
                f"{user!r}; check the user name and password.",
                error_type="Unauthorized",
            )
        token = self.answer(response).get("token")
        if not isinstance(token, str) or not token:
            raise Failure(f"{response.url} answered no token.", error_type="NoToken")
        self.auth = ("token", token)
        self.session.auth = None
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, what=None, **kwargs):
        """``GET path``'s answer. One without :data:`HEADER` is looked at: when
        ``GET @upgrade`` answers something else, the :class:`Failure` says what.

        :param what: the service, for a 404: "this server has no upgrade WHAT".
        """
        response = self.send("GET", path, **kwargs)
        if ours(response):
            self.verified = True
        elif response.status_code not in (401, 403):
            root = response if path == SERVICE else self.send("GET", SERVICE)
            if root.status_code == 200 and not ours(root):
                message = answers.impostor(root, self.body(root))
                raise Failure(message, error_type="NotUpgradeService")
        if what is not None:
            what = (
                f"This server has no upgrade {what} (HTTP 404 from {response.url}): "
                f"{answers.OLDER}, or the URL is not a Plone site."
            )
        return self.answer(response, what)

    def verify(self):
        """Before the first request that writes: make sure that it reaches
        collective.upgradeapi (see :func:`.answers.impostor`)."""
        if not self.verified:
            self.upgrade_info(timeout=self.timeout or 60.0)

    def upgrade_info(self, profile=None, timeout=None):
        params = {"profile": profile} if profile else None
        return self.get(SERVICE, params=params, timeout=timeout)

    def _post(self, body):
        """``POST @upgrade`` once verified; never redirected (see :meth:`answer`)."""
        self.verify()
        return self.send("POST", SERVICE, json=body, allow_redirects=False)

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

    def stamp(self, profile_ids):
        return self.answer(self._post({"stamp": list(profile_ids)}))

    def history(self, run_id=None, limit=None):
        path = f"{SERVICE}/history" + (f"/{run_id}" if run_id is not None else "")
        return self.get(path, "history", params={"b_size": limit} if limit else None)

    def lock(self):
        return self.get(f"{SERVICE}/lock", "lock service").get("lock")

    def _delete(self, path, **params):
        """``DELETE @upgrade/<path>`` if there is a lock: the answer, or ``None``."""
        if self.lock() is None:
            return None
        self.verify()
        response = self.send("DELETE", f"{SERVICE}/{path}", params=params or None)
        return None if response.status_code == 404 else self.answer(response)

    def unlock(self, force):
        return self._delete("lock", **({"force": "true"} if force else {}))

    def cancel(self):
        return self._delete("run")
