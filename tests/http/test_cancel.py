"""Never two runs at once: a Manager cancels a run, a live lock is never broken.

A run held at a test gate is cancelled with ``DELETE @upgrade/run`` (or a
forced ``DELETE @upgrade/lock``); it stops at its next step boundary (the
start of a step, or before a commit), nothing of it is committed, the history
says who cancelled it and the lock is free again.
"""

from collective.upgradeapi import api as engine
from collective.upgradeapi.engine import txn
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.status import at_step
from collective.upgradeapi.testing.status import wait_for_status
from plone.app.testing import SITE_OWNER_NAME

import inspect
import pytest
import transaction


SLOW = "collective.upgradeapi.testing:slow"
SLOWCOMMIT = "collective.upgradeapi.testing:slowcommit"
CHIEF = ("chief", "chief-secret")


pytestmark = pytest.mark.usefixtures("stand_ins")


@pytest.fixture
def chief(site, session_for):
    """A session of a second Manager, ``chief``."""
    site.acl_users.userFolderAddUser(*CHIEF, ["Manager"], [])
    transaction.commit()
    return session_for(*CHIEF)


def state_is(state):
    return lambda data: data["state"] == state


def test_manager_cancels_a_run_at_the_next_step(
    api,
    chief,
    background,
    gates,
    rewind,
    snapshot,
    example,
):
    rewind({SLOW: "5000"})
    before = snapshot()
    future = background({"profiles": [SLOW]})
    wait_for_status(api, at_step("Slow: first step"))

    response = chief.delete("/@upgrade/run")
    example("upgrade_run_cancel", response)
    assert response.status_code == 202, response.text
    data = response.json()
    assert data["cancel_requested"]["user"] == "chief"
    assert data["lock"]["cancel_requested"]["user"] == "chief"
    assert data["lock"]["user"] == SITE_OWNER_NAME
    assert "next step" in data["message"]
    # Asked again: the first request stays.
    again = api.delete("/@upgrade/run").json()
    assert again["cancel_requested"]["user"] == "chief"
    assert "chief already asked" in again["message"]
    # The step that runs now goes on; the run still holds the lock.
    assert api.get("/@upgrade/status").json()["state"] == "running"
    assert api.post("/@upgrade", json={"dry_run": True}).status_code == 409

    slow.open_gate(gates, "1")  # the first step ends; the second never starts
    response = future.result(timeout=60)
    example("upgrade_post_cancelled", response)
    assert response.status_code == 409, response.text
    error = response.json()
    assert error["type"] == "Cancelled"
    assert error["cancelled_by"] == "chief"
    assert error["step"]["title"] == "Slow: second step"
    assert "cancelled by chief before step 'Slow: second step'" in error["message"]

    assert snapshot() == before  # the first step's work was rolled back
    assert api.get("/@upgrade/lock").json()["lock"] is None
    status = api.get("/@upgrade/status").json()
    assert (status["state"], status["error_info"]["user"]) == ("cancelled", "chief")
    response = api.get(f"/@upgrade/history/{error['run_id']}")
    example("upgrade_history_cancelled", response)
    run = response.json()
    assert (run["result"], run["committed"]) == ("cancelled", False)
    assert run["profiles"][0]["versions"]["after"] == "5000"
    assert run["user"] == SITE_OWNER_NAME
    assert run["error"]["type"] == "Cancelled"
    assert run["error"]["user"] == "chief"
    assert [(s["title"], s["status"]) for s in run["steps"]] == [
        ("Slow: first step", "done"),
        ("Slow: second step", "not_run"),
    ]

    # The lock is free: the next run goes through.
    for name in ("2", "3"):
        slow.open_gate(gates, name)
    assert api.post("/@upgrade", json={"profiles": [SLOW]}).status_code == 200
    assert snapshot()["markers"] == ["slow-1", "slow-2", "slow-3"]


def test_cancel_before_the_commit(api, background, gates, rewind, snapshot):
    rewind({SLOW: "5000"})
    before = snapshot()
    future = background({"profiles": [SLOW]})
    slow.open_gate(gates, "1")
    slow.open_gate(gates, "2")
    wait_for_status(api, at_step("Slow: third step"))

    assert api.delete("/@upgrade/run").status_code == 202
    slow.open_gate(gates, "3")  # every step ran; the commit is refused

    response = future.result(timeout=60)
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "Cancelled"
    assert response.json()["step"] is None
    assert "before its commit" in response.json()["message"]
    assert snapshot() == before
    run = api.get("/@upgrade/history").json()["items"][0]
    assert run["result"] == "cancelled"
    # They ran, and were rolled back: done, not committed.
    assert [(s["status"], s["committed"]) for s in run["steps"]] == [
        ("done", False)
    ] * 3


def test_a_cancel_while_the_run_commits_is_too_late(
    api,
    background,
    gates,
    rewind,
    snapshot,
):
    """A run that commits its whole work cannot be cancelled any more: the
    cancel is refused, never promised and then ignored."""
    rewind({SLOWCOMMIT: "9000"})
    future = background({"profiles": [SLOWCOMMIT]})
    wait_for_status(api, lambda data: data["state"] == "committing")

    refused = api.delete("/@upgrade/run")
    forced = api.delete("/@upgrade/lock", params={"force": "true"})

    for response in (refused, forced):
        assert response.status_code == 409, response.text
        assert response.json()["type"] == "TooLate"
        assert response.json()["lock"]["committing"] is True
    slow.open_gate(gates, "commit")
    assert future.result(timeout=60).status_code == 200
    assert snapshot()["versions"][SLOWCOMMIT] == ("9001",)
    run = api.get("/@upgrade/history").json()["items"][0]
    assert (run["result"], run["committed"]) == ("success", True)
    detail = api.get(f"/@upgrade/history/{run['id']}").json()
    assert detail["cancel_requested"] is None


def test_cancel_a_dry_run(api, background, gates, rewind, snapshot):
    rewind({SLOW: "5000"})
    before = snapshot()
    future = background({"profiles": [SLOW], "dry_run": True})
    wait_for_status(api, at_step("Slow: first step"))

    assert api.delete("/@upgrade/run").status_code == 202
    slow.open_gate(gates, "1")

    assert future.result(timeout=60).json()["type"] == "Cancelled"
    assert snapshot() == before
    assert api.get("/@upgrade/lock").json()["lock"] is None


# After a unit committed, the run's current transaction is a new one; an
# exception leaving the run must abort that one (engine/txn.py).
UNITS_ABORTED = "manager._txn.finish" in inspect.getsource(txn.run_transaction)


@pytest.mark.skipif(
    not UNITS_ABORTED,
    reason="engine.txn.run_transaction aborts the run's first transaction, "
    "not its current one, when a run stops after a unit committed",
)
def test_cancel_with_commit_per_step_keeps_the_steps_before(
    api,
    background,
    gates,
    rewind,
    snapshot,
):
    rewind({SLOW: "5000"})
    future = background({"profiles": [SLOW], "commit": "step"})
    slow.open_gate(gates, "1")
    wait_for_status(api, at_step("Slow: second step"))

    assert api.delete("/@upgrade/run").status_code == 202
    slow.open_gate(gates, "2")  # the second step ends; its commit is refused

    response = future.result(timeout=60)
    assert response.json()["type"] == "Cancelled"
    after = snapshot()
    # The first step was its own unit, committed before the cancel.
    assert after["markers"] == ["slow-1"]
    assert after["versions"][SLOW] == ("5001",)
    assert api.get("/@upgrade/lock").json()["lock"] is None
    run = api.get("/@upgrade/history").json()["items"][0]
    assert (run["result"], run["committed"]) == ("cancelled", True)
    # Per unit: the first step's was committed; the second ran, and its unit
    # was rolled back at the cancel.
    assert [(s["title"], s["status"], s["committed"]) for s in run["steps"]] == [
        ("Slow: first step", "done", True),
        ("Slow: second step", "done", False),
    ]
    assert run["profiles"][0]["versions"] == {
        "before": "5000",
        "after": "5001",
        "fs": "5003",
    }


def test_forced_break_of_a_live_lock_cancels_its_run(
    api,
    chief,
    background,
    gates,
    rewind,
    snapshot,
    example,
):
    rewind({SLOW: "5000"})
    before = snapshot()
    future = background({"profiles": [SLOW]})
    wait_for_status(api, at_step("Slow: first step"))

    refused = chief.delete("/@upgrade/lock")
    assert refused.status_code == 409
    assert refused.json()["lock"]["state"] == "alive"
    response = chief.delete("/@upgrade/lock", params={"force": "true"})
    example("upgrade_lock_delete_force", response)
    assert response.status_code == 202, response.text
    data = response.json()
    assert data["broken"] is False
    assert data["lock"]["cancel_requested"]["user"] == "chief"
    # The lock stays until the run stops: no second run can overlap it.
    second = api.post("/@upgrade", json={"profiles": [SLOW]})
    assert second.status_code == 409
    assert second.json()["lock"]["cancel_requested"]["user"] == "chief"

    slow.open_gate(gates, "1")
    assert future.result(timeout=60).json()["cancelled_by"] == "chief"
    assert snapshot() == before
    assert snapshot()["markers"] == []  # the first step ran once, rolled back
    assert api.get("/@upgrade/lock").json()["lock"] is None


def test_nothing_to_cancel_is_404(api, example):
    response = api.delete("/@upgrade/run")

    example("upgrade_run_cancel_none", response)
    assert response.status_code == 404
    assert response.json()["type"] == "NotFound"


@pytest.mark.parametrize("method", ["get", "post"])
def test_run_answers_delete_only(api, method):
    response = getattr(api, method)("/@upgrade/run")

    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE"
    assert response.headers["Content-Type"] == "application/json"


def test_anonymous_cannot_cancel(anon_api):
    response = anon_api.delete("/@upgrade/run")

    assert response.status_code == 401


def test_engine_api_cancel(site, api, background, gates, rewind, snapshot):
    rewind({SLOW: "5000"})
    before = snapshot()
    future = background({"profiles": [SLOW]})
    wait_for_status(api, at_step("Slow: first step"))

    done = engine.cancel(site, "cron")
    assert done["lock"]["cancel_requested"]["user"] == "cron"
    slow.open_gate(gates, "1")

    assert future.result(timeout=60).json()["cancelled_by"] == "cron"
    assert snapshot() == before


def test_unlock_and_cancel_in_process(site, api, background, gates, rewind, snapshot):
    """``plone-upgrade --zope-conf ... unlock|cancel``: the in-process door."""
    from collective.upgradeapi.cli.inprocess import SiteDoor
    from plone_upgrade.door import Failure

    door = SiteDoor(site, "ops")
    assert door.lock() is None
    assert door.unlock(force=False) is None
    assert door.cancel() is None

    rewind({SLOW: "5000"})
    before = snapshot()
    future = background({"profiles": [SLOW]})
    wait_for_status(api, at_step("Slow: first step"))

    assert door.lock()["state"] == "alive"
    with pytest.raises(Failure) as refused:
        door.unlock(force=False)
    assert refused.value.document["status"] == 409
    done = door.cancel()
    assert done["@id"] == site.absolute_url() + "/@upgrade/run"
    assert done["cancel_requested"]["user"] == "ops"
    slow.open_gate(gates, "1")

    assert future.result(timeout=60).json()["cancelled_by"] == "ops"
    assert door.lock() is None
    assert snapshot() == before
