"""The write hold of one run: ``hold_writes`` in the body, the site's
default in the registry, the process default, and what each mode holds.

A run holds the lock at a gate of the slow profile (see ``test_doors``); a
write conflict is made by an edit of a document the live profile's first
step changed while the step waits at its gate (see :mod:`.testing.live`).
"""

from collective.upgradeapi import config
from collective.upgradeapi.testing import live
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.status import at_step
from collective.upgradeapi.testing.status import wait_for_status
from plone.app.testing import login
from plone.app.testing import setRoles
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.registry import field
from plone.registry import Record
from plone.registry.interfaces import IRegistry
from zope.component import getUtility

import pytest
import transaction


SLOW = "collective.upgradeapi.testing:slow"
LIVE = "collective.upgradeapi.testing:live"
VARIABLE = config.WRITE_HOLD[0]
FIRST = "Live: touch the documents 1"


@pytest.fixture(autouse=True)
def no_process_default(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)


@pytest.fixture
def documents(site):
    """The folder ``live`` with two Documents, committed."""
    setRoles(site, TEST_USER_ID, ["Manager"])
    login(site, TEST_USER_NAME)
    site.invokeFactory("Folder", live.FOLDER)
    for name in ("a", "b"):
        site[live.FOLDER].invokeFactory("Document", name, title="Before")
    transaction.commit()
    live.reset()
    yield site[live.FOLDER]
    live.reset()


@pytest.fixture
def run_at_gate(api, background, rewind, gates):
    """Return ``start(**body)``: a real run of the slow profile, waiting at
    its first step; afterwards the gates open and it must have succeeded."""
    futures = []

    def start(**body):
        rewind({SLOW: "5000"})
        futures.append(background({"profiles": [SLOW], **body}))
        wait_for_status(api, at_step("Slow: first step"))
        return futures[-1]

    yield start
    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)
    for future in futures:
        assert future.result(timeout=60).status_code == 200


def edit(api, path, title="During the run"):
    return api.patch(path, json={"title": title})


def set_site_default(site, value):
    registry = getUtility(IRegistry, context=site)
    registry.records[config.HOLD_RECORD] = Record(field.Bool(), value)
    transaction.commit()


@pytest.mark.parametrize(
    "value", ['"yes"', "1", "0", "null", '"true"', "[]", "{}"], ids=str
)
def test_bad_hold_writes_is_refused(api, rewind, snapshot, value):
    rewind({SLOW: "5000"})
    before = snapshot()

    response = api.post(
        "/@upgrade",
        data=f'{{"profiles": ["{SLOW}"], "hold_writes": {value}}}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BadRequest"
    assert "'hold_writes' must be true" in response.json()["message"]
    assert snapshot() == before
    assert api.get("/@upgrade/history").json()["items_total"] == 0


def test_hold_writes_does_not_go_with_stamp(api, rewind, snapshot):
    rewind({SLOW: "5000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"stamp": [SLOW], "hold_writes": True})

    assert response.status_code == 400, response.text
    assert "'stamp' goes alone" in response.json()["message"]
    assert snapshot() == before


@pytest.mark.parametrize(
    "body, registry, process, mode",
    [
        ({}, None, None, config.RETRIES),
        ({"hold_writes": True}, None, None, config.WHOLE_RUN),
        ({"hold_writes": False}, None, "on", config.NEVER),
        ({}, True, None, config.WHOLE_RUN),
        ({}, False, "on", config.NEVER),
        ({"hold_writes": True}, False, None, config.WHOLE_RUN),
        ({}, None, "on", config.WHOLE_RUN),
        ({}, None, "off", config.NEVER),
    ],
)
def test_the_mode_of_a_run(
    api,
    site,
    sync,
    documents,
    run_at_gate,
    monkeypatch,
    body,
    registry,
    process,
    mode,
):
    """The body wins, then the site's registry record, then the process."""
    if registry is not None:
        set_site_default(site, registry)
    if process is not None:
        monkeypatch.setenv(VARIABLE, process)

    run_at_gate(**body)
    lock = api.get("/@upgrade/lock").json()["lock"]
    response = edit(api, "/live/a")

    assert lock["writes_held"] == {
        "mode": mode,
        "holding": False,
        "seconds": 0.0,
        "units": [],
    }
    if mode == config.WHOLE_RUN:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "30"
        assert "until it ends (hold_writes)" in response.json()["message"]
        sync()
        assert site[live.FOLDER]["a"].title == "Before"
    else:
        assert response.status_code == 204, response.text
        sync()
        assert site[live.FOLDER]["a"].title == "During the run"


def test_a_whole_run_hold_is_recorded(api, documents, run_at_gate, gates):
    future = run_at_gate(hold_writes=True)
    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)
    answer = future.result(timeout=60).json()
    entry = api.get(answer["run"]).json()
    status = api.get("/@upgrade/status").json()

    held = answer["writes_held"]
    assert held["mode"] == config.WHOLE_RUN
    assert held["holding"] is False
    assert held["units"] == []
    assert 0 < held["seconds"] <= answer["duration"] + 1
    assert entry["writes_held"] == held
    assert status["writes_held"] == held


def test_a_dry_run_never_holds(api, site, sync, documents, run_at_gate):
    run_at_gate(dry_run=True, hold_writes=True)

    response = edit(api, "/live/a")

    assert response.status_code == 204, response.text
    assert (
        api.get("/@upgrade/lock").json()["lock"]["writes_held"]["mode"] == config.NEVER
    )
    sync()
    assert site[live.FOLDER]["a"].title == "During the run"


def test_a_missing_site_default_is_no_default(site):
    """The registry is read with ``get``: a site without the record falls
    back to the process default."""
    assert getUtility(IRegistry).get(config.HOLD_RECORD) is None
    assert config.hold_mode(site) == config.RETRIES


@pytest.mark.parametrize("commit", ["run", "profile", "step"])
@pytest.mark.parametrize("hold_writes", [None, False])
def test_a_conflict_is_retried(
    api,
    site,
    sync,
    documents,
    background,
    rewind,
    gates,
    commit,
    hold_writes,
):
    """An edit meets the first step: the unit (the run in ``run`` mode) runs
    again, with writes held unless ``hold_writes`` is false."""
    rewind({LIVE: "1"})
    for number in (1, 2, 3):
        for call in (1, 2, 3):
            if (number, call) not in ((1, 1), (1, 2)):
                slow.open_gate(gates, f"live-{number}-{call}")
    body = {"profiles": [LIVE], "commit": commit}
    if hold_writes is not None:
        body["hold_writes"] = hold_writes
    future = background(body)
    wait_for_status(api, at_step(FIRST))

    before = edit(api, "/live/a", "Before the retry")
    slow.open_gate(gates, "live-1-1")
    holding = wait_for_status(
        api, lambda data: at_step(FIRST)(data) and data["writes_held"]["units"]
    ).json()["writes_held"]
    during = edit(api, "/live/b", "During the retry")
    slow.open_gate(gates, "live-1-2")
    response = future.result(timeout=60)

    assert before.status_code == 204, before.text
    assert response.status_code == 200, response.text
    answer = response.json()
    unit = {"run": "run", "profile": LIVE, "step": f"{LIVE} {FIRST}"}[commit]
    held = answer["writes_held"]
    sync()
    folder = site[live.FOLDER]
    assert folder["a"].title == "Before the retry"
    assert all(getattr(folder["a"], f"live_step_{n}") for n in (1, 2, 3))
    if hold_writes is False:
        assert holding["holding"] is False
        assert during.status_code == 204, during.text
        assert folder["b"].title == "During the retry"
        # The edit during the unhold retry made it conflict once more.
        assert held == {
            "mode": config.NEVER,
            "holding": False,
            "seconds": 0.0,
            "units": [unit, unit],
        }
    else:
        assert holding["holding"] is True
        assert during.status_code == 503, during.text
        assert during.headers["Retry-After"] == "30"
        assert "write conflict" in during.json()["message"]
        assert folder["b"].title == "Before"
        assert held["mode"] == config.RETRIES
        assert held["units"] == [unit]
        assert held["holding"] is False
        assert 0 < held["seconds"] < answer["duration"]
    assert api.get(answer["run"]).json()["writes_held"] == held
    assert api.get("/@upgrade/status").json()["writes_held"] == held
    assert api.get("/@upgrade/lock").json()["lock"] is None
