"""Long upgrades: a transaction per profile or per step, reruns that continue
where a failed run stopped, conflicts that retry one unit, and marking steps
done without running them."""

from collective.upgradeapi.testing import patterns
from collective.upgradeapi.testing import slow
from plone.app.testing import setRoles
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import TEST_USER_PASSWORD

import pytest
import transaction


BASE = "collective.upgradeapi.testing:base"
BROKEN = "collective.upgradeapi.testing:broken"
PATTERNS = "collective.upgradeapi.testing:patterns"
FLAKY = "collective.upgradeapi.testing:flaky"


def post(api, **body):
    return api.post("/@upgrade", json=body)


def test_default_is_one_transaction_for_the_run(api, rewind):
    rewind({BASE: "1000"})

    data = post(api, profiles=[BASE]).json()

    assert data["commit"] == "run"
    assert [commit["unit"] for commit in data["commits"]] == ["run"]
    assert len(data["commits"][0]["steps"]) == 4
    assert data["commits"][0]["transaction"].startswith("0x")


def test_commit_per_profile_keeps_the_profiles_before_a_failure(
    api, rewind, snapshot, example
):
    rewind({BASE: "1000", BROKEN: "3000"})

    response = post(api, profiles=[BASE, BROKEN], commit="profile")

    example("upgrade_post_commit_profile_failed", response)
    assert response.status_code == 500
    data = response.json()
    assert (data["commit"], data["committed"]) == ("profile", True)
    assert [commit["unit"] for commit in data["commits"]] == [BASE]
    assert "what was committed before it stays" in data["message"]
    state = snapshot()
    assert state["versions"][BASE] == ("1003",)
    assert state["versions"][BROKEN] == ("3000",)
    assert state["markers"] == ["base-1001-a", "base-1001-b", "base-1002"]
    run = api.get(f"/@upgrade/history/{data['run_id']}").json()
    assert (run["result"], run["committed"]) == ("failed", True)


def test_commit_per_step_then_a_rerun_continues(api, rewind, snapshot, monkeypatch):
    rewind({PATTERNS: "7000"})
    monkeypatch.setitem(patterns.FAIL, "own_connection", True)

    failed = post(api, profiles=[PATTERNS], commit="step")

    assert failed.status_code == 500
    data = failed.json()
    assert len(data["commits"]) == 4
    assert [s["status"] for s in data["steps"]] == ["done"] * 4 + ["failed"]
    state = snapshot()
    assert state["versions"][PATTERNS] == ("7004",)
    assert "pattern-own-connection" not in state["markers"]

    monkeypatch.setitem(patterns.FAIL, "own_connection", False)
    rerun = post(api, profiles=[PATTERNS], commit="step")

    assert rerun.status_code == 200, rerun.text
    steps = rerun.json()["steps"]
    assert [s["title"] for s in steps] == ["Patterns: a step with its own connection"]
    state = snapshot()
    assert state["versions"][PATTERNS] == ("7005",)
    assert state["markers"].count("pattern-commit-begin") == 1


def test_dry_run_is_one_doomed_transaction_whatever_commit_says(api, rewind, snapshot):
    rewind({BASE: "1000"})
    before = snapshot()

    data = post(api, profiles=[BASE], commit="step", dry_run=True).json()

    assert (data["commit"], data["committed"], data["commits"]) == ("run", False, [])
    assert snapshot() == before


def test_a_conflict_retries_only_its_unit(api, rewind, snapshot, monkeypatch):
    rewind({BASE: "1000", FLAKY: "6000"})
    monkeypatch.setitem(slow.CONFLICTS, "left", 1)

    response = post(api, profiles=[BASE, FLAKY], commit="profile")

    assert response.status_code == 200, response.text
    data = response.json()
    assert [commit["unit"] for commit in data["commits"]] == [BASE, FLAKY]
    assert "Write conflict in unit" in data["report"]
    state = snapshot()
    assert state["markers"].count("flaky-6001") == 1
    assert state["markers"].count("base-1002") == 1


def test_a_unit_that_always_conflicts_ends_the_run_truthfully(
    api, rewind, snapshot, monkeypatch
):
    """Retried until the attempts run out: 409 with the run's id; its history
    entry says what became durable (the units before it) and lists each step
    once."""
    rewind({BASE: "1000", FLAKY: "6000"})
    monkeypatch.setitem(slow.CONFLICTS, "left", 10)

    response = post(api, profiles=[BASE, FLAKY], commit="profile")

    assert response.status_code == 409, response.text
    data = response.json()
    assert data["type"] == "ConflictError"
    assert "the units before it stay committed" in data["message"]
    run = api.get(f"/@upgrade/history/{data['run_id']}").json()
    assert (run["result"], run["committed"]) == ("error", True)
    versions = {p["id"]: p["versions"] for p in run["profiles"]}
    assert (versions[BASE]["before"], versions[BASE]["after"]) == ("1000", "1003")
    assert (versions[FLAKY]["before"], versions[FLAKY]["after"]) == ("6000", "6000")
    ids = [(s["profile"], s["id"]) for s in run["steps"]]
    assert len(ids) == len(set(ids))
    # What is durable, per step: BASE's unit; the conflicting step never
    # ended (each attempt raised), so it is not listed.
    durable = {s["profile"]: s["committed"] for s in run["steps"]}
    assert durable == {BASE: True}
    assert snapshot()["versions"][FLAKY] == ("6000",)


@pytest.mark.parametrize("commit", ["all", "", 1, None])
def test_bad_commit_mode_is_400(api, rewind, snapshot, commit):
    rewind({BASE: "1000"})
    before = snapshot()

    response = post(api, profiles=[BASE], commit=commit)

    assert response.status_code == 400
    assert "'commit' must be one of run, profile, step" in response.json()["message"]
    assert snapshot() == before


def test_mark_done_records_steps_without_running_them(api, rewind, snapshot, example):
    rewind({BASE: "1000"})
    steps = api.get("/@upgrade", params={"profile": BASE}).json()["profiles"][0]
    group = [step["id"] for step in steps["steps"][:2]]

    response = post(api, steps=group, mark_done=True)

    example("upgrade_post_mark_done", response)
    assert response.status_code == 200, response.text
    data = response.json()
    assert [s["status"] for s in data["steps"]] == ["marked_done"] * 2
    state = snapshot()
    assert state["versions"][BASE] == ("1001",)
    assert state["markers"] == []
    run = api.get(f"/@upgrade/history/{data['run_id']}").json()
    assert run["selection"]["mark_done"] is True
    assert [s["status"] for s in run["steps"]] == ["marked_done"] * 2

    again = post(api, steps=group, mark_done=True)
    assert again.status_code == 400
    assert "Unknown or not pending" in again.json()["message"]


@pytest.mark.parametrize(
    "body",
    [{"mark_done": True}, {"mark_done": True, "profiles": "all"}, {"mark_done": 1}],
)
def test_mark_done_needs_a_choice(api, rewind, snapshot, body):
    rewind({BASE: "1000"})
    before = snapshot()

    response = api.post("/@upgrade", json=body)

    assert response.status_code == 400
    assert "mark_done" in response.json()["message"]
    assert snapshot() == before


def test_mark_done_needs_its_own_permission(site, session_for, rewind, snapshot):
    """A role given Manage portal may upgrade, but not skip steps."""
    site.manage_permission("Manage portal", ["Manager", "Site Administrator"], 0)
    setRoles(site, TEST_USER_ID, ["Site Administrator"])
    transaction.commit()
    rewind({BASE: "1000"})
    before = snapshot()
    admin = session_for(TEST_USER_NAME, TEST_USER_PASSWORD)

    refused = admin.post("/@upgrade", json={"profiles": [BASE], "mark_done": True})
    allowed = admin.post("/@upgrade", json={"profiles": [BASE], "dry_run": True})

    assert refused.status_code == 403
    assert refused.json()["type"] == "Forbidden"
    assert allowed.status_code == 200, allowed.text
    assert snapshot() == before
