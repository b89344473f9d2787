"""POST @upgrade on the core path: Plone's own upgrade, dry and real."""

from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import FS
from collective.upgradeapi.testing.versions import LAST
from collective.upgradeapi.testing.versions import OLD


BUILTIN_KEYS = {"@id", "dry_run", "report", "upgraded", "versions"}
STEP_KEYS = {
    "id",
    "profile",
    "title",
    "source",
    "dest",
    "status",
    "committed",
    "duration",
    "log",
}


def test_dry_run_changes_nothing(api, rewind, snapshot, site, example):
    rewind({CORE: OLD})
    before = snapshot()

    response = api.post("/@upgrade", json={"dry_run": True})

    example("upgrade_post_dry_run", response)
    assert response.status_code == 200
    data = response.json()
    # What plone.restapi's own tests assert of the built-in service.
    assert data["@id"] == f"{site.absolute_url()}/@upgrade"
    assert set(data) >= BUILTIN_KEYS
    assert data["dry_run"] is True
    assert data["upgraded"] is False
    assert data["versions"]["fs"] != data["versions"]["instance"]
    # What this add-on adds.
    assert data["committed"] is False
    assert data["steps"], "the dry run runs the real steps"
    assert {s["status"] for s in data["steps"]} == {"done"}
    assert set(data["steps"][0]) == STEP_KEYS | {"changes"}
    assert data["steps"][0]["profile"] == CORE
    core = next(p for p in data["profiles"] if p["id"] == CORE)
    assert core["versions"]["before"] == OLD
    assert core["versions"]["after"] == OLD
    assert "Dry run" in data["report"]
    assert snapshot() == before
    assert api.get("/@upgrade").json()["versions"]["instance"] == OLD


def test_volto_dry_run_flag_changes_nothing(api, rewind, snapshot):
    """Volto sends camelCase ``dryRun``; the built-in ignores it and upgrades."""
    rewind({CORE: OLD})
    before = snapshot()

    response = api.post("/@upgrade", json={"dryRun": True})

    assert response.status_code == 200
    assert response.json()["dry_run"] is True
    assert response.json()["committed"] is False
    assert snapshot() == before


def test_real_run_brings_instance_to_fs(api, rewind, snapshot, example):
    rewind({CORE: OLD})

    response = api.post("/@upgrade", json={"dry_run": False})

    example("upgrade_post", response)
    assert response.status_code == 200
    data = response.json()
    assert set(data) >= BUILTIN_KEYS
    assert data["dry_run"] is False
    assert data["upgraded"] is True
    assert data["versions"]["fs"] == data["versions"]["instance"]
    assert data["committed"] is True
    assert {s["status"] for s in data["steps"]} == {"done"}
    titles = [s["title"] for s in data["steps"]]
    assert "Core: an ungrouped test step" in titles
    assert snapshot()["versions"][CORE] == tuple(data["versions"]["fs"].split("."))
    assert "core-ungrouped" in snapshot()["markers"]
    after = api.get("/@upgrade").json()
    assert after["needs_upgrade"] is False
    assert after["versions"]["instance"] == data["versions"]["fs"]


def test_empty_body_runs_the_core_upgrade(api, rewind, snapshot):
    rewind({CORE: LAST})

    response = api.post("/@upgrade", data="")

    assert response.status_code == 200
    assert response.json()["upgraded"] is True
    assert snapshot()["versions"][CORE] == (FS,)


def test_core_run_leaves_addons_alone(api, rewind, snapshot):
    rewind({CORE: LAST, "collective.upgradeapi.testing:base": "1000"})

    response = api.post("/@upgrade", json={})

    assert response.status_code == 200
    profiles = {s["profile"] for s in response.json()["steps"]}
    assert profiles == {CORE}
    state = snapshot()
    assert state["versions"]["collective.upgradeapi.testing:base"] == ("1000",)
    assert state["markers"] == ["core-ungrouped"]


def test_up_to_date_site_runs_nothing(api, snapshot):
    before = snapshot()

    response = api.post("/@upgrade", json={})

    assert response.status_code == 200
    data = response.json()
    assert data["steps"] == []
    assert data["upgraded"] is True
    assert snapshot() == before


def test_report_names_each_step(api, rewind):
    rewind({CORE: LAST})

    data = api.post("/@upgrade", json={"dry_run": True}).json()

    step = next(s for s in data["steps"] if s["title"].startswith("Core: an"))
    assert any("Test step core-ungrouped ran." in line for line in step["log"])
    assert "Test step core-ungrouped ran." in data["report"]
    assert "Ran upgrade step 'Core: an ungrouped test step'" in data["report"]


def test_a_core_path_that_falls_short_is_a_failure(api, rewind, snapshot):
    """A gap in the core's upgrade path: Plone's upgrade logs an error and
    stops; this add-on fails the run, commits nothing, and says why."""
    rewind({CORE: f"{LAST}.5"})  # no core step starts at or after it
    before = snapshot()

    response = api.post("/@upgrade", json={})

    assert response.status_code == 500
    data = response.json()
    assert data["type"] == "UpgradeFailed"
    failed = data["failed_step"]
    assert (failed["id"], failed["error"]["type"]) == (
        "upgrade-path",
        "IncompleteUpgradePath",
    )
    assert f"not at the code's version {FS}" in failed["error"]["message"]
    run = api.get(f"/@upgrade/history/{data['run_id']}").json()
    assert (run["result"], run["committed"]) == ("failed", False)
    assert snapshot() == before
