"""All or nothing: failing steps, committing steps, and the report."""

from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import LAST

import logging
import pytest


BASE = "collective.upgradeapi.testing:base"
BROKEN = "collective.upgradeapi.testing:broken"
COMMITTING = "collective.upgradeapi.testing:committing"


def test_failing_step_aborts_everything(api, rewind, snapshot, example):
    rewind({BROKEN: "3000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": [BROKEN]})

    example("upgrade_post_failed", response)
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["type"] == "UpgradeFailed"
    assert "Broken: a step that raises" in data["message"]
    assert "Nothing was committed" in data["message"]
    failed = data["failed_step"]
    assert failed["title"] == "Broken: a step that raises"
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "RuntimeError"
    assert failed["error"]["message"] == "This test step fails on purpose."
    assert "Traceback (most recent call last)" in failed["error"]["traceback"]
    assert [s["status"] for s in data["steps"]] == ["done", "failed"]
    assert "This test step fails on purpose." in data["report"]
    assert data["committed"] is False
    broken = next(p for p in data["profiles"] if p["id"] == BROKEN)
    assert broken["versions"] == {"before": "3000", "after": "3000", "fs": "3002"}
    # The first step's write and the failing step's own write are gone.
    assert snapshot() == before


def test_failure_in_later_profile_aborts_earlier_profiles(api, rewind, snapshot):
    rewind({CORE: LAST, BASE: "1000", BROKEN: "3000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": "all"})

    assert response.status_code == 500
    statuses = [(s["profile"], s["status"]) for s in response.json()["steps"]]
    assert (CORE, "done") in statuses
    assert (BASE, "done") in statuses
    assert (BROKEN, "failed") in statuses
    assert snapshot() == before


def test_steps_after_the_failure_are_not_run(api, rewind, snapshot):
    rewind({BROKEN: "3000", COMMITTING: "4000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": "all"})

    steps = response.json()["steps"]
    assert [(s["profile"], s["status"]) for s in steps] == [
        (BROKEN, "done"),
        (BROKEN, "failed"),
        (COMMITTING, "not_run"),
    ]
    assert steps[-1]["duration"] == 0
    assert steps[-1]["log"] == []
    assert snapshot() == before


def test_dry_run_of_committing_step_writes_nothing(api, rewind, snapshot, example):
    """The step's commit becomes a savepoint of the doomed transaction: the
    dry run goes on, tells the truth about the step, and writes nothing."""
    rewind({COMMITTING: "4000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": [COMMITTING], "dry_run": True})

    example("upgrade_post_dry_run_committing", response)
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["dry_run"], data["committed"]) == (True, False)
    assert [step["status"] for step in data["steps"]] == ["done"]
    assert "a savepoint was taken instead" in data["report"]
    assert data["profiles"][0]["versions"]["after"] == "4000"
    assert snapshot() == before


def test_real_run_of_committing_step_stays_atomic(api, rewind, snapshot):
    """The step's commit becomes a savepoint: one commit, at the end."""
    rewind({COMMITTING: "4000"})

    response = api.post("/@upgrade", json={"profiles": [COMMITTING]})

    assert response.status_code == 200
    assert response.json()["committed"] is True
    assert "a savepoint was taken instead" in response.json()["report"]
    state = snapshot()
    assert state["markers"] == ["committing-4001", "committing-4001-after-commit"]
    assert state["versions"][COMMITTING] == ("4001",)


def test_committing_step_then_failure_persists_nothing(api, rewind, snapshot):
    """Without the savepoint, the commit would have made the first write durable."""
    rewind({BROKEN: "3000", COMMITTING: "4000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": [COMMITTING, BROKEN]})

    assert response.status_code == 500
    statuses = [(s["profile"], s["status"]) for s in response.json()["steps"]]
    assert statuses == [(BROKEN, "done"), (BROKEN, "failed"), (COMMITTING, "not_run")]
    # Profiles run in the site's order (by id here), not the order given.
    assert snapshot() == before


@pytest.fixture
def quiet_root_logger():
    """The site's logging at WARNING, as many production sites have it."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.WARNING)
    yield
    root.setLevel(old)


def test_report_does_not_depend_on_logging_config(api, rewind, quiet_root_logger):
    rewind({CORE: LAST, BASE: "1002"})

    data = api.post("/@upgrade", json={"profiles": "all", "dry_run": True}).json()

    report = data["report"]
    assert "INFO collective.upgradeapi.testing: Test step core-ungrouped ran." in report
    # Plone's own INFO lines, emitted while the upgradeDepends step ran.
    assert "INFO Products.CMFPlone.resources.browser.resource: Updated" in report
    assert logging.getLogger().level == logging.WARNING


def test_capture_leaves_site_log_output_alone(api, rewind, quiet_root_logger):
    records = []

    class Remember(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Remember()
    logging.getLogger().addHandler(handler)
    try:
        rewind({BASE: "1001"})
        api.post("/@upgrade", json={"profiles": [BASE], "dry_run": True})
    finally:
        logging.getLogger().removeHandler(handler)

    assert [r for r in records if r.levelno < logging.WARNING] == []


@pytest.mark.parametrize("dry_run", [False, True])
def test_step_that_aborts_fails_the_run(api, rewind, snapshot, dry_run):
    """An abort would drop the earlier steps' work and let later ones commit."""
    aborting = "collective.upgradeapi.testing:aborting"
    rewind({CORE: LAST, aborting: "5000"})
    before = snapshot()

    response = api.post(
        "/@upgrade", json={"profiles": [CORE, aborting], "dry_run": dry_run}
    )

    assert response.status_code == 500
    failed = response.json()["failed_step"]
    assert failed["profile"] == aborting
    assert failed["error"]["type"] == "StepAborted"
    assert "aborted the transaction" in failed["error"]["message"]
    assert (CORE, "done") in [
        (s["profile"], s["status"]) for s in response.json()["steps"]
    ]
    assert snapshot() == before
