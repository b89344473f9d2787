"""GET @upgrade: plone.restapi's keys plus needs_upgrade and profiles."""

from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import FS
from collective.upgradeapi.testing.versions import LAST
from collective.upgradeapi.testing.versions import OLD

import pytest


BASE = "collective.upgradeapi.testing:base"
DEPENDENT = "collective.upgradeapi.testing:dependent"


def test_up_to_date_site(api):
    response = api.get("/@upgrade")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    # What tells a client it talks to this add-on, not to content or to
    # plone.restapi's service; refusals carry it too.
    assert response.headers["X-Upgrade-Service"] == "collective.upgradeapi"
    refused = api.get("/@upgrade/history/no-such-run")
    assert refused.status_code == 404
    assert refused.headers["X-Upgrade-Service"] == "collective.upgradeapi"
    data = response.json()
    assert data["needs_upgrade"] is False
    assert data["profiles"] == []
    assert data["upgrade_steps"] == {}
    assert data["versions"]["fs"] == data["versions"]["instance"]


def test_rewound_core_lists_real_steps(api, rewind, site, example):
    rewind({CORE: OLD})

    response = api.get("/@upgrade")

    example("upgrade_get", response)
    assert response.status_code == 200
    data = response.json()
    # What plone.restapi's own tests assert of the built-in service.
    assert data["@id"] == f"{site.absolute_url()}/@upgrade"
    assert data["versions"]["instance"] == OLD
    assert data["versions"]["fs"] != data["versions"]["instance"]
    assert len(data["upgrade_steps"]) > 0
    # And what this add-on adds.
    assert data["needs_upgrade"] is True
    core = data["profiles"][0]
    assert core["id"] == CORE
    assert core["core"] is True
    assert core["versions"] == {"fs": data["versions"]["fs"], "instance": OLD}
    listed = [(s["id"], s["title"]) for s in core["steps"]]
    grouped = [(s["id"], s["title"]) for g in data["upgrade_steps"].values() for s in g]
    assert listed == grouped
    assert set(core["steps"][0]) == {
        "id",
        "title",
        "description",
        "source",
        "dest",
        "proposed",
        "done",
    }
    assert core["steps"][0]["source"] == OLD
    assert core["steps"][0]["proposed"] is True
    assert core["steps"][-1]["dest"] == data["versions"]["fs"]


def test_ungrouped_core_step_is_listed(api, rewind):
    """The built-in crashes (KeyError, 500) on a step outside any group."""
    rewind({CORE: LAST})

    response = api.get("/@upgrade")

    assert response.status_code == 200
    data = response.json()
    titles = [s["title"] for s in data["upgrade_steps"][f"{LAST}-{FS}"]]
    assert "Core: an ungrouped test step" in titles
    core_titles = [s["title"] for s in data["profiles"][0]["steps"]]
    assert "Core: an ungrouped test step" in core_titles


def test_addon_profiles_follow_core_in_dependency_order(api, rewind):
    rewind({CORE: LAST, DEPENDENT: "2000", BASE: "1000"})

    data = api.get("/@upgrade").json()

    ids = [p["id"] for p in data["profiles"]]
    assert ids == [CORE, BASE, DEPENDENT]
    base = data["profiles"][1]
    assert base["core"] is False
    assert base["title"] == "Upgrade API test: base add-on"
    assert base["versions"] == {"fs": "1003", "instance": "1000"}
    assert [s["title"] for s in base["steps"]] == [
        "Base: first step of a group",
        "Base: second step of a group",
        "Base: a single step",
        "Base: re-import the registry",
    ]
    assert [s["proposed"] for s in base["steps"]] == [True, True, False, False]


def test_addon_only_pending_needs_upgrade(api, rewind):
    rewind({BASE: "1002"})

    data = api.get("/@upgrade").json()

    assert data["needs_upgrade"] is True
    assert data["upgrade_steps"] == {}
    assert [p["id"] for p in data["profiles"]] == [BASE]


def test_filter_one_profile(api, rewind, example):
    rewind({CORE: LAST, BASE: "1001"})

    response = api.get("/@upgrade", params={"profile": BASE})

    example("upgrade_get_profile", response)
    data = response.json()
    assert [p["id"] for p in data["profiles"]] == [BASE]
    # The filter narrows the listing, not the site's state.
    assert data["needs_upgrade"] is True
    assert f"{LAST}-{FS}" in data["upgrade_steps"]


@pytest.mark.parametrize(
    "profile, key",
    [
        ("no.such:profile", "unknown_profiles"),
        ("plone.app.iterate:default", "not_installed"),
    ],
)
def test_filter_bad_profile(api, profile, key):
    response = api.get("/@upgrade", params={"profile": profile})

    assert response.status_code == 400
    data = response.json()
    assert data["type"] == "BadRequest"
    assert profile in data["message"]
    assert data[key] == [profile]


def test_downgraded_profile_is_flagged(api, rewind):
    rewind({BASE: "1005"})

    data = api.get("/@upgrade").json()

    base = next(p for p in data["profiles"] if p["id"] == BASE)
    assert base["downgraded"] is True
    assert base["steps"] == []
    assert data["needs_upgrade"] is False


def test_get_writes_nothing(api, rewind, snapshot):
    rewind({CORE: OLD, BASE: "1000"})
    before = snapshot()

    api.get("/@upgrade")

    assert snapshot() == before
