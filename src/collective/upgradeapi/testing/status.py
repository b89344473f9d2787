"""Helpers for functional tests over HTTP: log in as a browser does, and
follow a run through ``GET @upgrade/status``."""

from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

import time


def log_in(session, site_url):
    """Log ``session`` in as the site owner through Plone's login form: an
    ``__ac`` cookie, no ``Authorization`` header; return the cookie."""
    response = session.post(
        f"{site_url}/login",
        data={
            "__ac_name": SITE_OWNER_NAME,
            "__ac_password": SITE_OWNER_PASSWORD,
            "buttons.login": "Log in",
        },
        headers={"Accept": "text/html"},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return session.cookies["__ac"]


def wait_for_status(api, predicate, timeout=120):
    """Poll ``GET @upgrade/status`` until ``predicate(data)``; the response.

    ``timeout`` only bounds how long a failing test hangs: the test waits for
    the state it names, however long a loaded machine takes to reach it.

    :param api: a requests session for the site root.
    """
    deadline = time.monotonic() + timeout
    while True:
        response = api.get("/@upgrade/status")
        if predicate(response.json()):
            return response
        assert time.monotonic() < deadline, f"status never matched: {response.text}"
        time.sleep(0.05)


def at_step(title):
    """A predicate: a run is inside the step ``title``."""

    def predicate(data):
        current = data.get("current_step") or {}
        return data["state"] == "running" and current.get("title") == title

    return predicate
