"""Failed runs go through Zope's failure path; only committed runs let
after-success work out (plone.cachepurging's purges, sent to a real HTTP
server standing in for the caching proxy); committed runs are audited."""

from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from plone.app.testing import SITE_OWNER_NAME
from plone.cachepurging.interfaces import ICachePurgingSettings
from plone.registry.interfaces import IRegistry
from ZODB.utils import tid_repr
from zope.component import getGlobalSiteManager
from zope.component import getUtility
from zope.component import provideHandler
from zope.component.hooks import setSite
from ZPublisher.interfaces import IPubBeforeCommit

import pytest
import threading
import time
import transaction


PURGING = "collective.upgradeapi.testing:purging"
BROKEN = "collective.upgradeapi.testing:broken"


class Proxy(ThreadingHTTPServer):
    """A caching proxy that records the PURGE requests it gets."""

    def __init__(self):
        self.purged = []

        class Handler(BaseHTTPRequestHandler):
            def do_PURGE(handler):  # noqa: N802 (HTTP method name)
                self.purged.append(handler.path)
                handler.send_response(200)
                handler.end_headers()

            def log_message(handler, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def sent(self):
        """The paths purged so far by the requests that have been answered.

        plone.cachepurging queues a request's purges before it is answered and
        sends them in order, one queue per proxy: everything queued so far is
        sent before a marker queued now.
        """
        from plone.cachepurging.interfaces import IPurger

        marker = f"/marker-{len(self.purged)}"
        getUtility(IPurger).purgeAsync(f"http://127.0.0.1:{self.server_port}{marker}")
        deadline = time.monotonic() + 60  # a bound for a failure, not a wait
        while marker not in self.purged:
            assert time.monotonic() < deadline, "the marker was never purged"
            time.sleep(0.05)
        return self.purged[: self.purged.index(marker)]


@pytest.fixture
def proxy(site):
    """A caching proxy, and purging of edited Documents turned on."""
    from plone.app.caching.interfaces import IPloneCacheSettings
    from plone.app.testing import login
    from plone.app.testing import setRoles
    from plone.app.testing import TEST_USER_ID
    from plone.app.testing import TEST_USER_NAME

    server = Proxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    setSite(site)
    registry = getUtility(IRegistry)
    registry.registerInterface(ICachePurgingSettings)
    registry.registerInterface(IPloneCacheSettings)
    settings = registry.forInterface(ICachePurgingSettings)
    settings.enabled = True
    settings.cachingProxies = (f"http://127.0.0.1:{server.server_address[1]}",)
    registry.forInterface(IPloneCacheSettings).purgedContentTypes = ("Document",)
    setRoles(site, TEST_USER_ID, ["Manager"])
    login(site, TEST_USER_NAME)
    site.invokeFactory("Document", "front-page", title="Front page")
    site.portal_setup.setLastVersionForProfile(PURGING, "8000")
    site.portal_setup.setLastVersionForProfile(BROKEN, "3000")
    transaction.commit()
    yield server
    server.shutdown()
    server.server_close()


def front_title(portal):
    transaction.abort()
    portal._p_jar.sync()
    return portal["front-page"].title


def test_committed_run_purges(api, site, proxy):
    """The reference: a real, committed run sends the purges it queued."""
    response = api.post("/@upgrade", json={"profiles": [PURGING]})

    assert response.status_code == 200, response.text
    assert response.json()["committed"] is True
    assert any(path.endswith("/front-page") for path in proxy.sent())
    assert front_title(site) == "Edited by an upgrade step"


def test_dry_run_purges_nothing(api, site, proxy):
    response = api.post("/@upgrade", json={"profiles": [PURGING], "dry_run": True})

    assert response.status_code == 200, response.text
    assert response.json()["steps"][0]["status"] == "done"
    assert proxy.sent() == []
    assert front_title(site) == "Front page"


def test_failed_run_purges_nothing(api, site, proxy):
    response = api.post("/@upgrade", json={"profiles": [PURGING, BROKEN]})

    assert response.status_code == 500
    assert response.json()["type"] == "UpgradeFailed"
    assert proxy.sent() == []
    assert front_title(site) == "Front page"


@pytest.fixture
def logged_errors():
    """The error log entries recorded while the test runs (their types)."""
    from Products.SiteErrorLog.interfaces import IErrorRaisedEvent

    entries = []

    def handler(event):
        entries.append(event["type"])

    provideHandler(handler, (IErrorRaisedEvent,))
    yield entries
    getGlobalSiteManager().unregisterHandler(handler, (IErrorRaisedEvent,))


def test_failed_run_reaches_the_error_log(api, rewind, snapshot, logged_errors):
    rewind({BROKEN: "3000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": [BROKEN]})

    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "UpgradeFailed"
    assert {"failed_step", "steps", "report", "committed", "run_id"} <= set(body)
    assert "traceback" not in body
    assert logged_errors == ["UpgradeFailed"]
    assert snapshot() == before


@pytest.fixture
def doomed():
    """For each request published while the test runs: whether its
    transaction is doomed (to be aborted) when the publisher ends it."""
    seen = []

    def handler(event):
        seen.append(transaction.get().isDoomed())

    provideHandler(handler, (IPubBeforeCommit,))
    yield seen
    getGlobalSiteManager().unregisterHandler(handler, (IPubBeforeCommit,))


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/@upgrade", {"dry_run": "yes"}, 400),
        ("/@upgrade/history", {}, 405),
        ("/@addons/no.such.addon/upgrade", None, 404),
    ],
)
def test_refusal_stays_out_of_the_error_log(
    api, snapshot, logged_errors, doomed, path, body, status
):
    before = snapshot()

    response = api.post(path, json=body)

    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert logged_errors == []
    assert doomed == [True]
    assert snapshot() == before


def test_committed_run_is_audited(api, site, rewind, sync):
    rewind({"collective.upgradeapi.testing:base": "1000"})

    response = api.post(
        "/@upgrade", json={"profiles": ["collective.upgradeapi.testing:base"]}
    )

    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    assert response.json()["run"].endswith(f"/@upgrade/history/{run_id}")
    sync()
    run = api.get(f"/@upgrade/history/{run_id}").json()
    assert run["committed"] is True
    # The run's transaction, as the Undo tab lists it (the storage's history
    # of the version record that the run wrote).
    setup = site.portal_setup
    record = setup._profile_upgrade_versions
    last = site._p_jar.db().history(record._p_oid, size=1)[0]
    assert f"collective.upgradeapi: upgrade run {run_id}" in last["description"]
    assert last["user_name"].split()[-1] == SITE_OWNER_NAME
    assert run["transaction"] == tid_repr(last["tid"])


def test_dry_run_records_no_transaction(api, rewind):
    rewind({"collective.upgradeapi.testing:base": "1000"})

    response = api.post(
        "/@upgrade",
        json={"profiles": ["collective.upgradeapi.testing:base"], "dry_run": True},
    )

    run = api.get(f"/@upgrade/history/{response.json()['run_id']}").json()
    assert (run["committed"], run["transaction"]) == (False, None)
