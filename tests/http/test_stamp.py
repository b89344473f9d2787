"""Stamping a downgraded profile back to the version its code knows."""

import pytest


BASE = "collective.upgradeapi.testing:base"


@pytest.fixture
def downgraded(rewind, snapshot):
    """The base profile recorded at 1005 while its code declares 1003."""
    rewind({BASE: "1005"})
    return snapshot()


def test_downgraded_message_says_what_to_do(api, downgraded, snapshot):
    response = api.post("/@upgrade", json={"profiles": [BASE]})

    assert response.status_code == 400
    data = response.json()
    assert data["type"] == "Downgraded"
    assert "newer version than the code knows" in data["message"]
    assert "Install the version of the code" in data["message"]
    assert "stamp the profile" in data["message"]
    assert snapshot() == downgraded


def test_stamp_records_the_declared_version(api, downgraded, snapshot, example):
    response = api.post("/@upgrade", json={"stamp": [BASE]})

    example("upgrade_post_stamp", response)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["committed"] is True
    assert data["steps"] == []
    assert data["profiles"] == [
        {"id": BASE, "versions": {"before": "1005", "after": "1003", "fs": "1003"}}
    ]
    assert snapshot()["versions"][BASE] == ("1003",)
    assert snapshot()["markers"] == []
    listed = api.get("/@upgrade", params={"profile": BASE}).json()["profiles"]
    assert listed == []
    run = api.get(f"/@upgrade/history/{data['run_id']}").json()
    assert run["selection"]["stamp"] == [BASE]
    assert run["result"] == "success"


@pytest.mark.parametrize(
    "body, text",
    [
        ({"stamp": ["plone.app.contenttypes:default"]}, "not downgraded"),
        ({"stamp": ["no.such:profile"]}, "Unknown profile id(s)"),
        ({"stamp": [BASE], "dry_run": True}, "'stamp' goes alone"),
        ({"stamp": []}, "'stamp' must be a non-empty list"),
    ],
)
def test_bad_stamps_are_refused(api, downgraded, snapshot, body, text):
    response = api.post("/@upgrade", json=body)

    assert response.status_code == 400
    assert text in response.json()["message"]
    assert snapshot() == downgraded


def test_core_run_passes_over_a_downgraded_core_addon(api, rewind, snapshot, site):
    """A core add-on recorded ahead of its code does not block Plone's core
    upgrade; like Plone's upgrade, the run passes over it."""
    from collective.upgradeapi.testing.versions import CORE
    from collective.upgradeapi.testing.versions import LAST

    rewind({CORE: LAST, "plone.app.contenttypes:default": "9999"})

    response = api.post("/@upgrade", json={})

    assert response.status_code == 200, response.text
    ids = [profile["id"] for profile in response.json()["profiles"]]
    assert "plone.app.contenttypes:default" not in ids
    listed = api.get("/@upgrade").json()["profiles"]
    flagged = [p for p in listed if p["id"] == "plone.app.contenttypes:default"]
    assert flagged[0]["downgraded"] is True
    assert flagged[0]["metadata_lags"] is False


def test_downgraded_core_profile_refuses_the_core_run(api, rewind, snapshot):
    from collective.upgradeapi.testing.versions import CORE

    rewind({CORE: "9999"})
    before = snapshot()

    response = api.post("/@upgrade", json={})

    assert response.status_code == 400
    assert response.json()["downgraded"] == [CORE]
    assert snapshot() == before
