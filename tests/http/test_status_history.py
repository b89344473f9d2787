"""One upgrade at a time: the lock, the live status and the history of runs."""

from collective.upgradeapi.engine import units
from collective.upgradeapi.engine.runner import Runner
from collective.upgradeapi.engine.selection import SelectionError
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.status import at_step
from collective.upgradeapi.testing.status import wait_for_status
from collective.upgradeapi.tracking.publishing import side_connection
from collective.upgradeapi.tracking.store import now
from plone.app.testing import SITE_OWNER_NAME

import pytest
import time


SLOW = "collective.upgradeapi.testing:slow"
BROKEN = "collective.upgradeapi.testing:broken"
FLAKY = "collective.upgradeapi.testing:flaky"


@pytest.fixture
def plant_lock(site):
    """Return ``plant(age, user)``: commit a lock as a run that died would leave it.

    The lock's last sign of life is ``age`` seconds old; the run is recorded as
    running in the history.
    """

    def plant(age, user="someone"):
        def change(records):
            run_id = records.start(user, False, {}, 3)
            records.runs[run_id]["started"] = now() - age
            records.set(
                "lock",
                {
                    "token": "dead",
                    "user": user,
                    "since": now() - age,
                    "dry_run": False,
                },
            )
            records.set(
                "progress",
                {
                    "token": "dead",
                    "run_id": run_id,
                    "started": now() - age,
                    "current_step": None,
                    "steps_started": 1,
                    "steps_done": 1,
                    "steps_total": 3,
                    "updated": now() - age,
                },
            )
            return run_id

        with side_connection(site) as side:
            return side.transact(change)

    return plant


def test_status_idle(site, api, example):
    response = api.get("/@upgrade/status")

    example("upgrade_status_idle", response)
    assert response.status_code == 200
    assert response.json() == {
        "@id": site.absolute_url() + "/@upgrade/status",
        "state": "idle",
        "dry_run": None,
        "user": None,
        "started": None,
        "current_step": None,
        "steps_done": None,
        "steps_total": None,
        "progress": 0,
        "commit": None,
        "run_id": None,
        "heartbeat": None,
        "stale": None,
        "error_info": None,
        "writes_held": None,
        "last_run": None,
    }


def test_running_upgrade_is_visible_and_locked(
    api, background, rewind, gates, snapshot, example
):
    rewind({SLOW: "5000"})
    future = background({"profiles": [SLOW]})

    first = wait_for_status(api, at_step("Slow: first step"))
    example("upgrade_status_running", first)
    data = first.json()
    assert data["dry_run"] is False
    assert data["user"] == SITE_OWNER_NAME
    assert data["current_step"]["profile"] == SLOW
    assert (data["steps_done"], data["steps_total"]) == (0, 3)
    assert data["stale"] is False
    assert data["run_id"] == 1

    # A second run, real or dry, must wait for this one.
    before = snapshot()
    second = api.post("/@upgrade", json={"profiles": [SLOW]})
    example("upgrade_post_locked", second)
    assert second.status_code == 409
    locked = second.json()
    assert locked["type"] == "UpgradeLocked"
    assert locked["lock"]["user"] == SITE_OWNER_NAME
    assert locked["lock"]["dry_run"] is False
    assert locked["lock"]["stale"] is False
    assert "GET @upgrade/status" in locked["message"]
    assert api.post("/@upgrade", json={"dry_run": True}).status_code == 409
    assert api.get("/@upgrade/lock").json()["lock"]["user"] == SITE_OWNER_NAME

    slow.open_gate(gates, "1")
    data = wait_for_status(api, at_step("Slow: second step")).json()
    assert (data["steps_done"], data["steps_total"]) == (1, 3)
    assert snapshot() == before  # nothing is committed before the end

    slow.open_gate(gates, "2")
    slow.open_gate(gates, "3")
    response = future.result(timeout=60)
    assert response.status_code == 200, response.text
    assert [s["status"] for s in response.json()["steps"]] == ["done"] * 3

    status = api.get("/@upgrade/status").json()
    assert (status["state"], status["progress"]) == ("committed", 100)
    assert (status["run_id"], status["error_info"]) == (1, None)
    assert status["last_run"]["id"] == 1
    assert status["last_run"]["result"] == "success"
    assert api.get("/@upgrade/lock").json()["lock"] is None
    runs = api.get("/@upgrade/history").json()
    assert runs["items_total"] == 1
    run = runs["items"][0]
    assert run["user"] == SITE_OWNER_NAME
    assert run["dry_run"] is False
    assert run["committed"] is True
    assert run["selection"] == {
        "profiles": [SLOW],
        "steps": None,
        "commit": "run",
        "mark_done": False,
    }
    assert [s["status"] for s in run["steps"]] == ["done"] * 3
    assert run["profiles"] == [
        {"id": SLOW, "versions": {"before": "5000", "after": "5003", "fs": "5003"}}
    ]
    assert snapshot()["markers"] == ["slow-1", "slow-2", "slow-3"]


def test_history_records_dry_and_failed_runs(site, api, rewind, snapshot, example):
    rewind({SLOW: "5000", BROKEN: "3000"})
    before = snapshot()

    dry = api.post("/@upgrade", json={"profiles": [SLOW], "dry_run": True})
    failed = api.post("/@upgrade", json={"profiles": [BROKEN]})

    assert dry.status_code == 200
    assert failed.status_code == 500
    assert snapshot() == before
    assert api.get("/@upgrade/lock").json()["lock"] is None
    response = api.get("/@upgrade/history")
    example("upgrade_history", response)
    runs = response.json()
    assert runs["items_total"] == 2
    assert "batching" not in runs
    newest, oldest = runs["items"]
    assert (newest["id"], newest["result"], newest["dry_run"]) == (2, "failed", False)
    assert (oldest["id"], oldest["result"], oldest["dry_run"]) == (1, "success", True)
    assert oldest["committed"] is False
    assert [s["status"] for s in newest["steps"]] == ["done", "failed"]
    assert newest["error"]["type"] == "RuntimeError"
    assert newest["error"]["step"]["title"] == "Broken: a step that raises"

    item = api.get("/@upgrade/history/2")
    example("upgrade_history_item", item)
    run = item.json()
    assert run["@id"] == site.absolute_url() + "/@upgrade/history/2"
    assert "This test step fails on purpose." in run["report"]
    assert "Traceback" in run["steps"][1]["error"]["traceback"]
    assert run["steps"][0]["log"]
    assert api.get("/@upgrade/status").json()["last_run"]["id"] == 2


def test_history_is_batched_and_bounded(site, api, rewind, monkeypatch):
    monkeypatch.setenv("COLLECTIVE_UPGRADEAPI_HISTORY_SIZE", "3")
    rewind({SLOW: "5000"})
    for _ in range(4):
        response = api.post("/@upgrade", json={"profiles": [SLOW], "dry_run": True})
        assert response.status_code == 200

    everything = api.get("/@upgrade/history").json()
    assert everything["items_total"] == 3
    assert [run["id"] for run in everything["items"]] == [4, 3, 2]

    page = api.get("/@upgrade/history", params={"b_size": 2, "b_start": 2}).json()
    assert [run["id"] for run in page["items"]] == [2]
    url = site.absolute_url() + "/@upgrade/history"
    assert page["batching"] == {
        "@id": url + "?b_size=2&b_start=2",
        "first": url + "?b_start=0&b_size=2",
        "last": url + "?b_start=2&b_size=2",
        "prev": url + "?b_start=0&b_size=2",
    }
    assert api.get("/@upgrade/history/1").status_code == 404


@pytest.mark.parametrize(
    "path, params",
    [
        ("/@upgrade/history/99", None),
        ("/@upgrade/history/latest", None),
        ("/@upgrade/history/1/steps", None),
        ("/@upgrade/nothing", None),
        ("/@upgrade/status/more", None),
    ],
)
def test_unknown_paths_are_404_json(api, path, params):
    response = api.get(path, params=params)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["type"] == "NotFound"


@pytest.mark.parametrize(
    "params", [{"b_size": "0"}, {"b_start": "-1"}, {"b_size": "x"}]
)
def test_bad_batching_is_400(api, params):
    response = api.get("/@upgrade/history", params=params)

    assert response.status_code == 400
    assert response.json()["type"] == "BadRequest"


def test_unknown_run_is_404(api, example):
    response = api.get("/@upgrade/history/99")

    example("upgrade_history_unknown", response)
    assert response.status_code == 404
    assert response.json()["run_id"] == "99"


def test_bad_input_takes_no_lock_and_records_nothing(api, rewind, snapshot):
    rewind({SLOW: "5000"})
    before = snapshot()

    for body in ({"profiles": ["no.such:default"]}, {"dry_run": "yes"}):
        assert api.post("/@upgrade", json=body).status_code == 400

    assert api.get("/@upgrade/history").json()["items_total"] == 0
    assert api.get("/@upgrade/lock").json()["lock"] is None
    assert snapshot() == before


def test_stale_lock_is_reported_and_broken(api, plant_lock, rewind, snapshot, example):
    rewind({SLOW: "5000"})
    run_id = plant_lock(age=3600, user="ghost")
    before = snapshot()

    status = api.get("/@upgrade/status").json()
    assert status["state"] == "running"
    assert status["stale"] is True
    assert (status["user"], status["run_id"], status["steps_done"]) == ("ghost", 1, 1)
    response = api.post("/@upgrade", json={"profiles": [SLOW]})
    example("upgrade_post_locked_stale", response)
    assert response.status_code == 409
    assert response.json()["lock"]["stale"] is True
    assert "DELETE @upgrade/lock" in response.json()["message"]
    assert snapshot() == before

    response = api.delete("/@upgrade/lock")
    example("upgrade_lock_delete", response)
    assert response.status_code == 200
    data = response.json()
    assert data["broken"] is True
    assert data["lock"]["user"] == "ghost"
    status = api.get("/@upgrade/status").json()
    assert status["state"] == "abandoned"
    assert status["error_info"]["type"] == "LockBroken"
    abandoned = api.get(f"/@upgrade/history/{run_id}").json()
    assert abandoned["result"] == "abandoned"
    assert abandoned["error"]["type"] == "LockBroken"

    response = api.delete("/@upgrade/lock")
    example("upgrade_lock_delete_none", response)
    assert response.status_code == 404
    assert response.json()["type"] == "NotFound"

    assert api.post("/@upgrade", json={"profiles": [SLOW]}).status_code == 200


def test_live_lock_is_broken_only_with_force(api, plant_lock, example):
    plant_lock(age=0)

    response = api.delete("/@upgrade/lock")
    example("upgrade_lock_delete_alive", response)
    assert response.status_code == 409
    assert response.json()["lock"]["stale"] is False
    assert api.delete("/@upgrade/lock", params={"force": "maybe"}).status_code == 400
    assert api.get("/@upgrade/lock").json()["lock"] is not None

    # A live lock is never removed: force asks its run to cancel instead.
    response = api.delete("/@upgrade/lock", params={"force": "true"})
    assert response.status_code == 202
    assert response.json()["broken"] is False
    lock = api.get("/@upgrade/lock").json()["lock"]
    assert lock is not None
    assert lock["cancel_requested"]["user"] == SITE_OWNER_NAME


def test_stale_after_is_configurable(api, plant_lock, monkeypatch):
    plant_lock(age=30)
    assert api.get("/@upgrade/lock").json()["lock"]["stale"] is False

    monkeypatch.setenv("COLLECTIVE_UPGRADEAPI_STALE_AFTER", "10")
    lock = api.get("/@upgrade/lock").json()["lock"]
    assert (lock["stale"], lock["stale_after"]) == (True, 10)


def test_a_conflict_runs_the_run_again(api, rewind, snapshot):
    """A write conflict: the whole run (commit "run") runs again from the
    newest state, with writes held, and commits."""
    rewind({FLAKY: "6000"})
    slow.CONFLICTS["left"] = 1
    try:
        response = api.post("/@upgrade", json={"profiles": [FLAKY]})
    finally:
        slow.CONFLICTS["left"] = 0

    assert response.status_code == 200, response.text
    held = response.json()["writes_held"]
    assert (held["mode"], held["holding"], held["units"]) == ("retries", False, ["run"])
    assert held["seconds"] > 0
    # The first attempt was rolled back: the step's work is there once.
    assert snapshot()["markers"] == ["flaky-6001"]
    runs = api.get("/@upgrade/history").json()["items"]
    assert [(run["id"], run["result"]) for run in runs] == [(1, "success")]


def test_conflict_after_every_attempt_is_answered(api, rewind, snapshot):
    rewind({FLAKY: "6000"})
    before = snapshot()
    slow.CONFLICTS["left"] = units.ATTEMPTS
    try:
        response = api.post("/@upgrade", json={"profiles": [FLAKY]})
    finally:
        slow.CONFLICTS["left"] = 0

    assert response.status_code == 409, response.text
    assert response.json()["type"] == "ConflictError"
    assert "Run it again" in response.json()["message"]
    assert response.json()["writes_held"]["units"] == ["run"] * (units.ATTEMPTS - 1)
    assert snapshot() == before
    runs = api.get("/@upgrade/history").json()["items"]
    assert [(run["id"], run["result"]) for run in runs] == [(1, "error")]
    assert runs[0]["error"]["type"] == "ConflictError"
    assert api.get("/@upgrade/lock").json()["lock"] is None

    # Asked again, the run goes through.
    response = api.post("/@upgrade", json={"profiles": [FLAKY]})
    assert response.status_code == 200, response.text
    assert snapshot()["markers"] == ["flaky-6001"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/@upgrade/status"),
        ("get", "/@upgrade/history"),
        ("get", "/@upgrade/history/1"),
        ("get", "/@upgrade/lock"),
        ("delete", "/@upgrade/lock"),
    ],
)
def test_anonymous_is_refused(anon_api, method, path):
    response = getattr(anon_api, method)(path)

    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"


def test_heartbeat_keeps_a_long_step_alive(api, background, rewind, gates, monkeypatch):
    # Stale after 1 s of silence: the heartbeat thread beats every 0.5 s.
    monkeypatch.setenv("COLLECTIVE_UPGRADEAPI_STALE_AFTER", "1")
    rewind({SLOW: "5000"})
    future = background({"profiles": [SLOW]})
    wait_for_status(api, at_step("Slow: first step"))

    for _ in range(3):
        time.sleep(1)
        assert api.get("/@upgrade/lock").json()["lock"]["stale"] is False

    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)
    assert future.result(timeout=60).status_code == 200
    assert api.get("/@upgrade/lock").json()["lock"] is None


@pytest.mark.parametrize(
    "error, status",
    [
        (SelectionError("The site changed meanwhile."), 400),
        (RuntimeError("The engine broke."), 500),
    ],
)
def test_lock_is_released_when_the_run_cannot_go_on(
    api, rewind, snapshot, monkeypatch, error, status
):
    rewind({SLOW: "5000"})
    before = snapshot()

    def run(self, selection, before_commit=None):
        raise error

    monkeypatch.setattr(Runner, "run", run)
    response = api.post("/@upgrade", json={"profiles": [SLOW]})

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert api.get("/@upgrade/lock").json()["lock"] is None
    # Recorded from the moment it took the lock: the answer names the run.
    run_id = response.json()["run_id"]
    run = api.get(f"/@upgrade/history/{run_id}").json()
    assert (run["result"], run["committed"]) == ("error", False)
    assert run["error"]["message"] == str(error)
    assert api.get("/@upgrade/status").json()["state"] == "error"
    assert snapshot() == before
