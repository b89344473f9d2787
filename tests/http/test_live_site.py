"""An upgrade that finishes on a live site.

A site with :data:`DOCUMENTS` documents in one folder (a layer of its own,
made once); editor threads edit
them over HTTP, as fast as the server answers, each edit a document of its
own; the live profile's three steps change every one of those documents
(:mod:`collective.upgradeapi.testing.live`). In each commit mode, with the
default write hold (only while a unit runs again after a write conflict):

- edits land while the first step waits at its gate, so the run's first
  attempt conflicts, in every mode;
- the unit runs again with writes held: the test waits until the status says
  so and until an editor got 503, then lets the step go on;
- the run finishes; every edit answered 2xx is in the database, no other is;
  the answer, the status and the history say how long writes were held.

The figures (documents, edits per second, run duration, writes held) are
logged (``pytest -o log_cli=true -k live_site``).
"""

from collective.upgradeapi import config
from collective.upgradeapi.testing import FIXTURE
from collective.upgradeapi.testing import live
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.status import at_step
from collective.upgradeapi.testing.status import wait_for_status
from plone.app.testing import FunctionalTesting
from plone.app.testing import login
from plone.app.testing import logout
from plone.app.testing import PloneSandboxLayer
from plone.app.testing import setRoles
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.testing.zope import WSGI_SERVER_FIXTURE
from pytest_plone import fixtures_factory

import logging
import os
import pytest
import threading
import time


pytestmark = pytest.mark.slow
logger = logging.getLogger("collective.upgradeapi.tests")

LIVE = "collective.upgradeapi.testing:live"
FIRST = "Live: touch the documents 1"
DOCUMENTS = 2000
EDITORS = 3


class LiveSiteLayer(PloneSandboxLayer):
    """The test site plus the folder ``live`` with :data:`DOCUMENTS`
    Documents, made once for every test of this module."""

    defaultBases = (FIXTURE,)

    def setUpPloneSite(self, portal):
        setRoles(portal, TEST_USER_ID, ["Manager"])
        login(portal, TEST_USER_NAME)
        portal.invokeFactory("Folder", live.FOLDER)
        for number in range(DOCUMENTS):
            portal[live.FOLDER].invokeFactory(
                "Document", f"doc-{number}", title="Before"
            )
        logout()


LIVE_SITE = FunctionalTesting(
    bases=(LiveSiteLayer(), WSGI_SERVER_FIXTURE),
    name="CollectiveUpgradeAPI:LiveSite",
)
# Set up for this module's tests only, then torn down.
globals().update(fixtures_factory(((LIVE_SITE, "live_site"),), keep_session=False))


@pytest.fixture
def site(live_site):
    """This module's site: the fixtures of ``conftest`` use it."""
    return live_site["portal"]


@pytest.fixture
def folder(site):
    live.reset()
    yield site[live.FOLDER]
    live.reset()


class Editors:
    """Threads that edit the folder's documents over HTTP until stopped,
    each edit a document of its own; :attr:`edits` lists ``(id, title,
    status)``; :meth:`wait` waits for what they answered."""

    def __init__(self, session_for, ids):
        self.ids = ids
        self.edits = []
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.sessions = [
            session_for(SITE_OWNER_NAME, SITE_OWNER_PASSWORD) for _ in range(EDITORS)
        ]
        self.threads = [
            threading.Thread(target=self._edit, args=(index,))
            for index in range(EDITORS)
        ]

    def __enter__(self):
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=120)
        self.seconds = time.monotonic() - self.started

    def _edit(self, index):
        session = self.sessions[index]
        for doc_id in self.ids[index::EDITORS]:
            if self.stopping.is_set():
                return
            title = f"Edited {doc_id}"
            response = session.patch(
                f"/{live.FOLDER}/{doc_id}", json={"title": title}, timeout=120
            )
            with self.changed:
                self.edits.append((doc_id, title, response.status_code))
                self.changed.notify_all()

    def count(self, status):
        return sum(1 for edit in self.edits if status(edit[2]))

    def wait(self, status, more):
        """Wait until ``more`` edits answered ``status(code)`` from now."""
        with self.changed:
            target = self.count(status) + more
            assert self.changed.wait_for(
                lambda: self.count(status) >= target, timeout=120
            ), f"The editors never got {more} more such answers."


def ok(code):
    return 200 <= code < 300


def held(code):
    return code == 503


@pytest.mark.parametrize("commit", ["run", "profile", "step"])
def test_an_upgrade_finishes_on_a_live_site(
    api,
    site,
    sync,
    folder,
    background,
    session_for,
    rewind,
    gates,
    monkeypatch,
    commit,
):
    monkeypatch.delenv(config.WRITE_HOLD[0], raising=False)
    rewind({LIVE: "1"})
    for number in (1, 2, 3):
        for call in range(1, 10):
            if (number, call) not in ((1, 1), (1, 2)):
                slow.open_gate(gates, f"live-{number}-{call}")
    ids = [f"doc-{number}" for number in range(DOCUMENTS)]

    with Editors(session_for, ids) as editors:
        future = background({"profiles": [LIVE], "commit": commit})
        wait_for_status(api, at_step(FIRST))
        editors.wait(ok, EDITORS)
        slow.open_gate(gates, "live-1-1")
        wait_for_status(
            api, lambda data: at_step(FIRST)(data) and data["writes_held"]["holding"]
        )
        editors.wait(held, 1)
        slow.open_gate(gates, "live-1-2")
        response = future.result(timeout=300)
        # The editors go on until the run has answered.

    assert response.status_code == 200, response.text
    answer = response.json()
    held_writes = answer["writes_held"]
    assert held_writes["mode"] == config.RETRIES
    assert held_writes["holding"] is False
    assert len(held_writes["units"]) >= 1
    assert 0 < held_writes["seconds"] < answer["duration"]
    assert api.get(answer["run"]).json()["writes_held"] == held_writes
    assert api.get("/@upgrade/status").json()["writes_held"] == held_writes
    sync()
    lost, leaked = [], []
    for doc_id, title, status in editors.edits:
        now = folder[doc_id].title
        if ok(status) and now != title:
            lost.append((doc_id, status))
        if not ok(status) and now != "Before":
            leaked.append((doc_id, status))
    assert lost == [] and leaked == []
    assert all(
        getattr(item, f"live_step_{number}", False)
        for item in folder.objectValues()
        for number in (1, 2, 3)
    )
    assert site.portal_setup.getLastVersionForProfile(LIVE) == ("4",)
    written = editors.count(ok)
    logger.warning(
        f"live site, commit={commit}: {DOCUMENTS} documents, "
        f"{len(editors.edits)} edits ({written} saved, {editors.count(held)} "
        f"held with 503, others: {len(editors.edits) - written - editors.count(held)}) "
        f"in {editors.seconds:.1f} s = {len(editors.edits) / editors.seconds:.1f}/s; "
        f"run {answer['duration']:.1f} s, writes held {held_writes['seconds']:.2f} s "
        f"for {held_writes['units']}; lost 0; load {os.getloadavg()[0]:.2f}"
    )
