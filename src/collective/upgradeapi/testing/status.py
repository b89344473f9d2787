"""Helpers for tests that follow a run through ``GET @upgrade/status``."""

import time


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
