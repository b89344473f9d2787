"""GET @upgrade/status through every phase of a run: the same keys all along,
a state for each phase and outcome, a progress a client can draw."""

from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.status import wait_for_status
from collective.upgradeapi.tracking.publishing import STATUS_KEYS as KEYS


SLOW = "collective.upgradeapi.testing:slow"
SLOWCOMMIT = "collective.upgradeapi.testing:slowcommit"
BROKEN = "collective.upgradeapi.testing:broken"


def state_is(state):
    return lambda data: data["state"] == state


def keys(data):
    return set(data) - {"@id"}


def test_running_then_committing_then_committed(api, background, gates, rewind):
    rewind({SLOW: "5000", SLOWCOMMIT: "9000"})
    future = background({"profiles": [SLOW, SLOWCOMMIT]})

    running = wait_for_status(api, state_is("running")).json()
    assert keys(running) == set(KEYS)
    assert running["current_step"]["title"] == "Slow: first step"
    assert (running["steps_total"], running["progress"]) == (4, 0)

    slow.open_gate(gates, "1")
    quarter = wait_for_status(api, lambda d: d["steps_done"] == 1).json()
    assert quarter["progress"] == 25
    slow.open_gate(gates, "2")
    slow.open_gate(gates, "3")

    committing = wait_for_status(api, state_is("committing")).json()
    assert keys(committing) == set(KEYS)
    assert committing["current_step"] is None
    assert committing["progress"] == 100
    slow.open_gate(gates, "commit")

    assert future.result(timeout=60).status_code == 200
    done = api.get("/@upgrade/status").json()
    assert keys(done) == set(KEYS)
    assert (done["state"], done["progress"], done["error_info"]) == (
        "committed",
        100,
        None,
    )


def test_failed_and_rolled_back_outcomes(api, rewind, snapshot):
    rewind({BROKEN: "3000", SLOW: "5000"})
    before = snapshot()

    assert api.post("/@upgrade", json={"profiles": [BROKEN]}).status_code == 500
    failed = api.get("/@upgrade/status").json()
    assert (failed["state"], failed["progress"]) == ("failed", 50)
    assert failed["error_info"]["type"] == "RuntimeError"
    assert failed["error_info"]["step"]["profile"] == BROKEN

    dry = api.post("/@upgrade", json={"profiles": [SLOW], "dry_run": True})
    assert dry.status_code == 200
    rolled_back = api.get("/@upgrade/status").json()
    assert (rolled_back["state"], rolled_back["dry_run"]) == ("rolled_back", True)
    assert rolled_back["progress"] == 100
    assert snapshot() == before
