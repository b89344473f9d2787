"""Plone's other upgrade doors while a run holds the lock, and ``@addons``
upgrades through the engine.

The lock is held by a real run waiting at a test gate (the slow test profile):
every door must refuse and write nothing while it waits.
"""

from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing import steps
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from Products.GenericSetup import EXTENSION
from Products.GenericSetup.registry import _profile_registry
from Products.GenericSetup.upgrade import _registerUpgradeStep
from Products.GenericSetup.upgrade import _upgrade_registry
from Products.GenericSetup.upgrade import UpgradeStep

import collective.upgradeapi.testing
import examples
import pytest
import time


SLOW = "collective.upgradeapi.testing:slow"
#: Two add-ons plone.restapi's @addons knows (one profile each, registered by
#: the ``addons`` fixture): one whose steps work, one whose second step fails.
GOOD = "collective.upgradeapi.doortest"
BAD = "collective.upgradeapi.doorbroken"
GOOD_PROFILE = f"{GOOD}:default"
BAD_PROFILE = f"{BAD}:default"
#: A profile directory whose metadata.xml says 3002.
PROFILE_PATH = str(
    Path(collective.upgradeapi.testing.__file__).parent / "profiles/broken"
)


@pytest.fixture(autouse=True)
def stand_ins(monkeypatch):
    """A lock's holder changes from process to process: fixed in examples."""
    monkeypatch.setitem(examples.STAND_INS, "host", "zope-1.example.org")
    monkeypatch.setitem(examples.STAND_INS, "pid", 4242)


def register_addon(product, handlers):
    """Register ``product:default`` (3000 -> 3001 -> 3002) with ``handlers``."""
    profile_id = f"{product}:default"
    _profile_registry.registerProfile(
        "default",
        f"Door test add-on {product}",
        "",
        PROFILE_PATH,
        product=product,
        profile_type=EXTENSION,
    )
    for source, handler in zip(("3000", "3001"), handlers, strict=True):
        dest = str(int(source) + 1)
        step = UpgradeStep(
            f"{product}: {source} to {dest}", profile_id, source, dest, "", handler
        )
        _registerUpgradeStep(step)
    return profile_id


@pytest.fixture
def addons(site, rewind):
    """The two door test add-ons, registered and installed at version 3000."""
    register_addon(GOOD, (steps.marker("good-3001"), steps.marker("good-3002")))
    register_addon(BAD, (steps.marker("bad-3001"), steps.broken_3002))
    rewind({GOOD_PROFILE: "3000", BAD_PROFILE: "3000"})
    yield
    for product in (GOOD, BAD):
        _profile_registry.unregisterProfile("default", product)
        del _upgrade_registry._registry[f"{product}:default"]


@pytest.fixture
def gates(tmp_path, monkeypatch):
    """A directory of gates: the slow test steps wait until theirs is opened."""
    monkeypatch.setenv(slow.VARIABLE, str(tmp_path))
    return tmp_path


def wait_for_status(api, predicate, timeout=120):
    """Poll GET @upgrade/status until ``predicate(data)`` (``timeout`` bounds
    a failure; it is no wait)."""
    deadline = time.monotonic() + timeout
    while True:
        data = api.get("/@upgrade/status").json()
        if predicate(data):
            return data
        assert time.monotonic() < deadline, f"status never matched: {data}"
        time.sleep(0.05)


def waiting_at_first_step(data):
    current = data.get("current_step") or {}
    return data["state"] == "running" and current.get("title") == "Slow: first step"


@pytest.fixture
def held(api, session_for, rewind, gates):
    """Return ``hold(dry_run=False)``: a run of the slow profile that holds
    the lock, waiting at its first step until the test ends.

    Afterwards the gates are opened and the run must have succeeded.
    """
    pool = ThreadPoolExecutor(max_workers=1)
    futures = []

    def hold(dry_run=False):
        rewind({SLOW: "5000"})
        session = session_for(SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
        body = {"profiles": [SLOW], "dry_run": dry_run}
        futures.append(pool.submit(session.post, "/@upgrade", json=body, timeout=120))
        wait_for_status(api, waiting_at_first_step)

    yield hold
    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)
    for future in futures:
        response = future.result(timeout=60)
        assert response.status_code == 200, response.text
    pool.shutdown(wait=True)


@pytest.fixture
def token(site):
    """A valid plone.protect token of the site owner (Plone's forms send one)."""
    from plone.protect.authenticator import createToken
    from plone.testing import zope
    from zope.component.hooks import getSite
    from zope.component.hooks import setSite

    before = getSite()
    setSite(site)
    zope.login(site.aq_parent["acl_users"], SITE_OWNER_NAME)
    try:
        return createToken()
    finally:
        zope.logout()
        setSite(before)


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
