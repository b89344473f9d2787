"""POST @upgrade with profiles and single steps."""

from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import FS
from collective.upgradeapi.testing.versions import LAST
from collective.upgradeapi.testing.versions import OLD
from plone.registry.interfaces import IRegistry
from zope.component import getUtility

import pytest
import transaction


BASE = "collective.upgradeapi.testing:base"
DEPENDENT = "collective.upgradeapi.testing:dependent"
BROKEN = "collective.upgradeapi.testing:broken"
RECORD = "collective.upgradeapi.testing.greeting"


def pending_steps(api, profile_id):
    data = api.get("/@upgrade", params={"profile": profile_id}).json()
    return data["profiles"][0]["steps"] if data["profiles"] else []


def test_run_one_addon_profile(api, rewind, snapshot, example):
    rewind({CORE: LAST, BASE: "1000"})

    response = api.post("/@upgrade", json={"profiles": [BASE]})

    example("upgrade_post_profiles", response)
    assert response.status_code == 200
    data = response.json()
    assert [(s["profile"], s["status"]) for s in data["steps"]] == [(BASE, "done")] * 4
    assert data["profiles"] == [
        {"id": BASE, "versions": {"before": "1000", "after": "1003", "fs": "1003"}}
    ]
    assert data["upgraded"] is True
    state = snapshot()
    assert state["markers"] == ["base-1001-a", "base-1001-b", "base-1002"]
    assert state["versions"][BASE] == ("1003",)
    # The core profile was not part of this run.
    assert state["versions"][CORE] == (LAST,)


def test_all_runs_core_first_then_dependency_order(api, rewind, snapshot):
    rewind({CORE: LAST, DEPENDENT: "2000", BASE: "1001"})

    response = api.post("/@upgrade", json={"profiles": "all"})

    assert response.status_code == 200
    profiles = [s["profile"] for s in response.json()["steps"]]
    assert sorted(set(profiles), key=profiles.index) == [CORE, BASE, DEPENDENT]
    assert profiles.count(BASE) == 2
    assert profiles.count(DEPENDENT) == 1
    assert snapshot()["markers"] == ["core-ungrouped", "base-1002", "dependent-2001"]
    assert api.get("/@upgrade").json()["needs_upgrade"] is False


def test_profiles_run_in_site_order_whatever_the_request_order(api, rewind, snapshot):
    rewind({DEPENDENT: "2000", BASE: "1001"})

    response = api.post("/@upgrade", json={"profiles": [DEPENDENT, BASE]})

    assert [s["profile"] for s in response.json()["steps"]] == [
        BASE,
        BASE,
        DEPENDENT,
    ]


def test_naming_the_core_profile_runs_plones_upgrade(api, rewind, snapshot):
    rewind({CORE: LAST, BASE: "1000"})

    response = api.post("/@upgrade", json={"profiles": [CORE]})

    assert response.status_code == 200
    assert {s["profile"] for s in response.json()["steps"]} == {CORE}
    assert snapshot()["versions"][CORE] == (FS,)


def test_upgrade_depends_reimports_the_registry(api, rewind, site, snapshot):
    registry = getUtility(IRegistry)
    del registry.records[RECORD]
    rewind({BASE: "1002"})

    response = api.post("/@upgrade", json={"profiles": [BASE]})

    assert response.status_code == 200
    assert [s["title"] for s in response.json()["steps"]] == [
        "Base: re-import the registry"
    ]
    snapshot()
    assert getUtility(IRegistry)[RECORD] == "Hello from the base test profile"


def test_dry_run_of_profiles_changes_nothing(api, rewind, snapshot):
    rewind({CORE: OLD, BASE: "1000", DEPENDENT: "2000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": "all", "dry_run": True})

    assert response.status_code == 200
    data = response.json()
    assert {s["status"] for s in data["steps"]} == {"done"}
    assert {s["profile"] for s in data["steps"]} >= {CORE, BASE, DEPENDENT}
    assert data["committed"] is False
    assert snapshot() == before


def test_run_single_step(api, rewind, snapshot, example):
    rewind({BASE: "1000"})
    steps = pending_steps(api, BASE)
    single = steps[2]
    assert single["title"] == "Base: a single step"

    response = api.post("/@upgrade", json={"steps": [single["id"]]})

    example("upgrade_post_steps", response)
    assert response.status_code == 200
    data = response.json()
    assert [s["id"] for s in data["steps"]] == [single["id"]]
    # Earlier steps are still pending: the version cannot move past them.
    assert data["profiles"][0]["versions"]["after"] == "1000"
    state = snapshot()
    assert state["markers"] == ["base-1002"]
    assert state["done"] == {BASE: (single["id"],)}
    listed = pending_steps(api, BASE)
    assert [s["done"] for s in listed] == [False, False, True, False]


def test_step_run_on_its_own_is_not_run_again(api, rewind, snapshot):
    rewind({BASE: "1000"})
    single = pending_steps(api, BASE)[2]
    api.post("/@upgrade", json={"steps": [single["id"]]})

    response = api.post("/@upgrade", json={"profiles": [BASE]})

    titles = [s["title"] for s in response.json()["steps"]]
    assert titles == [
        "Base: first step of a group",
        "Base: second step of a group",
        "Base: re-import the registry",
    ]
    state = snapshot()
    assert state["markers"] == ["base-1002", "base-1001-a", "base-1001-b"]
    assert state["versions"][BASE] == ("1003",)
    # Once the version moved past it, the step needs no record of its own.
    assert state["done"] == {}


def test_running_steps_in_order_moves_the_version(api, rewind, snapshot):
    rewind({BASE: "1000"})
    first, second = pending_steps(api, BASE)[:2]

    response = api.post("/@upgrade", json={"steps": [second["id"], first["id"]]})

    # Registry order, whatever the request order.
    assert [s["id"] for s in response.json()["steps"]] == [first["id"], second["id"]]
    state = snapshot()
    assert state["versions"][BASE] == ("1001",)
    assert state["done"] == {}


def test_half_a_group_does_not_move_the_version(api, rewind, snapshot):
    rewind({BASE: "1000"})
    first = pending_steps(api, BASE)[0]

    api.post("/@upgrade", json={"steps": [first["id"]]})

    state = snapshot()
    assert state["versions"][BASE] == ("1000",)
    assert state["done"] == {BASE: (first["id"],)}


def test_steps_of_several_profiles(api, rewind, snapshot):
    rewind({CORE: LAST, BASE: "1001", DEPENDENT: "2000"})
    data = api.get("/@upgrade").json()
    by_title = {s["title"]: s["id"] for p in data["profiles"] for s in p["steps"]}
    wanted = [
        by_title["Dependent: a step after base"],
        by_title["Core: an ungrouped test step"],
    ]

    response = api.post("/@upgrade", json={"steps": wanted})

    steps = response.json()["steps"]
    assert [s["profile"] for s in steps] == [CORE, DEPENDENT]
    assert snapshot()["markers"] == ["core-ungrouped", "dependent-2001"]


def test_already_done_step_is_refused(api, rewind, snapshot):
    rewind({BASE: "1000"})
    single = pending_steps(api, BASE)[2]
    api.post("/@upgrade", json={"steps": [single["id"]]})
    before = snapshot()

    response = api.post("/@upgrade", json={"steps": [single["id"]]})

    assert response.status_code == 400
    assert response.json()["already_done"] == [single["id"]]
    assert snapshot() == before


def test_failing_single_step(api, rewind, snapshot):
    rewind({BROKEN: "3000"})
    before = snapshot()
    steps = pending_steps(api, BROKEN)

    response = api.post("/@upgrade", json={"steps": [s["id"] for s in steps]})

    assert response.status_code == 500
    assert response.json()["failed_step"]["id"] == steps[1]["id"]
    assert snapshot() == before


def test_step_ids_are_stable(api, rewind, site):
    """GenericSetup derives ids from title, versions and sortkey, not memory."""
    rewind({BASE: "1000"})
    listed = pending_steps(api, BASE)
    from Products.GenericSetup.utils import _getHash

    assert listed[0]["id"] == _getHash("Base: first step of a group", "1000", "1001", 0)


@pytest.mark.parametrize("dry_run", [True, False])
def test_unknown_step_with_known_ones_runs_nothing(api, rewind, snapshot, dry_run):
    rewind({BASE: "1000"})
    before = snapshot()
    known = pending_steps(api, BASE)[0]["id"]

    response = api.post(
        "/@upgrade", json={"steps": [known, "nope"], "dry_run": dry_run}
    )

    assert response.status_code == 400
    assert response.json()["unknown_steps"] == ["nope"]
    assert snapshot() == before
    transaction.abort()
