"""Plone's other upgrade doors while a run holds the lock, and ``@addons``
upgrades through the engine.

The lock is held by a real run waiting at a test gate (the slow test profile):
every door must refuse and write nothing while it waits.
"""

from plone.app.testing import SITE_OWNER_NAME

import pytest


SLOW = "collective.upgradeapi.testing:slow"
#: The two add-ons of the ``addons`` fixture (conftest.py).
GOOD = "collective.upgradeapi.doortest"
BAD = "collective.upgradeapi.doorbroken"
GOOD_PROFILE = f"{GOOD}:default"
BAD_PROFILE = f"{BAD}:default"
pytestmark = pytest.mark.usefixtures("stand_ins")


def history(api):
    return api.get("/@upgrade/history").json()["items"]


# -- @addons/<id>/upgrade through the engine ----------------------------


def test_addons_upgrade_runs_through_the_engine(api, addons, snapshot):
    before = snapshot()

    response = api.post(f"/@addons/{GOOD}/upgrade")

    assert response.status_code == 204, response.text
    after = snapshot()
    assert after["versions"][GOOD_PROFILE] == ("3002",)
    assert after["markers"] == [*before["markers"], "good-3001", "good-3002"]
    (run,) = history(api)
    assert run["selection"]["profiles"] == [GOOD_PROFILE]
    assert (run["result"], run["committed"]) == ("success", True)
    assert [step["status"] for step in run["steps"]] == ["done", "done"]


def test_addons_upgrade_with_representation(api, addons, snapshot):
    """Volto's add-ons control panel may ask for the add-ons back."""
    response = api.post(
        f"/@addons/{GOOD}/upgrade", headers={"Prefer": "return=representation"}
    )

    assert response.status_code == 200, response.text
    assert isinstance(response.json()["items"], list)
    assert snapshot()["versions"][GOOD_PROFILE] == ("3002",)


def test_addons_upgrade_failure_is_a_500_and_aborts(api, addons, snapshot, example):
    before = snapshot()

    response = api.post(f"/@addons/{BAD}/upgrade")

    example("addons_upgrade_failed", response)
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["type"] == "UpgradeFailed"
    assert data["failed_step"]["title"] == f"{BAD}: 3001 to 3002"
    assert [step["status"] for step in data["steps"]] == ["done", "failed"]
    assert data["committed"] is False
    assert "This test step fails on purpose." in data["report"]
    assert snapshot() == before
    (run,) = history(api)
    assert (run["result"], run["committed"]) == ("failed", False)


def test_addons_upgrade_refuses_while_locked(api, addons, held, snapshot, example):
    held()
    before = snapshot()

    response = api.post(f"/@addons/{GOOD}/upgrade")

    example("addons_upgrade_locked", response)
    assert response.status_code == 409, response.text
    data = response.json()
    assert data["type"] == "UpgradeLocked"
    assert data["lock"]["user"] == SITE_OWNER_NAME
    assert snapshot() == before
    assert len(history(api)) == 1  # only the run that holds the lock


@pytest.mark.parametrize(
    "addon, status, key",
    [
        ("no.such.addon", 404, None),
        ("plone.app.iterate", 400, "not_installed"),
    ],
)
def test_addons_upgrade_refusals(api, addons, snapshot, addon, status, key):
    before = snapshot()

    response = api.post(f"/@addons/{addon}/upgrade")

    assert response.status_code == status, response.text
    data = response.json()
    assert data["message"]
    if key:
        assert key in data
    assert snapshot() == before
    assert history(api) == []


def test_addons_other_actions_stay_restapis(api, addons, site, sync):
    """Install and uninstall are plone.restapi's own code, as before."""
    response = api.post("/@addons/plone.app.iterate/install")

    assert response.status_code == 204, response.text
    sync()
    setup = site.portal_setup
    assert setup.getLastVersionForProfile("plone.app.iterate:default") != "unknown"
    assert history(api) == []


# -- the classic doors ----------------------------------------------------


def step_ids(site, profile_id):
    return [info["id"] for info in site.portal_setup.listUpgrades(profile_id)]


def classic_doors(site):
    """``{name: (path, form data)}``: each door, asked to upgrade GOOD."""
    return {
        "plone-upgrade": ("/@@plone-upgrade", {"form.submitted": "1"}),
        "upgrade_products": (
            "/@@upgrade_products",
            {"prefs_reinstallProducts:list": GOOD},
        ),
        "manage_doUpgrades": (
            "/portal_setup/manage_doUpgrades",
            {"profile_id": GOOD_PROFILE, "upgrades:list": step_ids(site, GOOD_PROFILE)},
        ),
        "upgradeProfile": (
            "/portal_setup/upgradeProfile",
            {"profile_id": GOOD_PROFILE},
        ),
    }


DOORS = ["plone-upgrade", "upgrade_products", "manage_doUpgrades", "upgradeProfile"]


@pytest.mark.parametrize("door", DOORS)
def test_classic_door_refuses_while_locked(
    api, site, addons, held, snapshot, door, example
):
    path, data = classic_doors(site)[door]
    held()
    before = snapshot()

    response = api.post(path, data=data, headers={"Accept": "text/html"})

    assert response.status_code == 409, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert "holds this site's upgrade lock" in response.text
    assert "Nothing was done." in response.text
    assert snapshot() == before
    if door == "manage_doUpgrades":
        example("portal_setup_upgrades_locked", response)


@pytest.mark.parametrize("door", ["plone-upgrade", "upgrade_products"])
def test_classic_door_answers_json_to_rest_clients(
    api, site, addons, held, snapshot, door
):
    path, data = classic_doors(site)[door]
    held()
    before = snapshot()

    response = api.post(path, data=data)

    assert response.status_code == 409, response.text
    assert response.json()["type"] == "UpgradeLocked"
    assert f"(@@{door})" in response.json()["message"]
    assert snapshot() == before


def test_classic_doors_refuse_during_a_dry_run_too(api, site, addons, held, snapshot):
    path, data = classic_doors(site)["manage_doUpgrades"]
    held(dry_run=True)
    before = snapshot()

    response = api.post(path, data=data, headers={"Accept": "text/html"})

    assert response.status_code == 409, response.text
    assert "A dry run started by" in response.text
    assert snapshot() == before


@pytest.mark.parametrize("door", ["manage_doUpgrades", "upgradeProfile"])
def test_classic_door_works_when_free(api, site, addons, snapshot, token, door):
    path, data = classic_doors(site)[door]

    response = api.post(
        path,
        data=data,
        headers={"Accept": "text/html", "X-CSRF-TOKEN": token},
        allow_redirects=False,
    )

    assert response.status_code in (204, 302), response.text
    assert snapshot()["versions"][GOOD_PROFILE] == ("3002",)


def test_plone_upgrade_form_shows_when_locked(api, held):
    """Only a submitted form is refused; looking at it is not."""
    held()

    response = api.get("/@@plone-upgrade", headers={"Accept": "text/html"})

    assert response.status_code == 200
