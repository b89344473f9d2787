"""Parity on every profile shape: the same steps as GenericSetup, the same end.

The test profiles of :mod:`collective.upgradeapi.testing.shapes` each have
one shape of upgrade steps: groups and single steps, ``upgradeDepends``,
several steps to one destination ordered by ``sortkey``, ``checker``-gated
steps, dotted versions, a ``metadata.xml`` that lags its steps (plone.volto
6.0.1), a downgraded profile, profiles that depend on each other, a step that
installs another profile. Each is rewound, then:

- ``GET @upgrade`` must list exactly what ``portal_setup.listUpgrades``
  lists: the same steps, order, ``proposed`` flags and destinations;
- a run through every door of this add-on must leave the site exactly as
  ``portal_setup.upgradeProfile`` does, profile after profile.
"""

from collective.upgradeapi import api as engine
from collective.upgradeapi.engine.selection import Selection
from collective.upgradeapi.testing.shapes import EXTRA
from collective.upgradeapi.testing.shapes import PREFIX
from collective.upgradeapi.testing.shapes import REWIND

import pytest
import transaction


LAGGING = f"{PREFIX}lagging"
DOWNGRADED = f"{PREFIX}downgraded"

#: The order in which Plone's own API is called for the reference run:
#: ``shape-wanted`` before ``shape-needs``, which depends on it in its
#: metadata.xml (GenericSetup has no order across profiles; this add-on runs
#: dependencies first, then by id).
ORDER = sorted(REWIND, key=lambda p: (p == f"{PREFIX}needs", p))


def _flat(upgrades):
    for item in upgrades:
        yield from item if isinstance(item, list) else [item]


def _version(value):
    return ".".join(value) if value else None


@pytest.fixture
def shapes(site, as_owner, sync):
    """Every shape profile installed (its dependencies too), then rewound."""
    setup = site.portal_setup
    with as_owner():
        for profile_id in REWIND:
            setup.runAllImportStepsFromProfile(f"profile-{profile_id}")
        for profile_id, version in REWIND.items():
            setup.setLastVersionForProfile(profile_id, version)
    transaction.commit()
    sync()
    assert setup.getLastVersionForProfile(EXTRA) == "unknown"
    return dict(REWIND)


def _plone_upgrade(site, as_owner):
    """Plone's way: ``portal_setup.upgradeProfile`` for each shape."""
    setup = site.portal_setup
    with as_owner():
        for profile_id in ORDER:
            setup.upgradeProfile(profile_id)


@pytest.mark.parametrize("profile_id", sorted(REWIND))
def test_listing_is_genericsetups(site, api, shapes, profile_id):
    listed = [
        {
            "id": info["id"],
            "title": info["title"],
            "source": _version(info["source"]),
            "dest": _version(info["dest"]),
            "proposed": bool(info["proposed"]),
        }
        for info in _flat(site.portal_setup.listUpgrades(profile_id))
    ]
    data = api.get("/@upgrade", params={"profile": profile_id}).json()

    if profile_id == DOWNGRADED:
        assert listed == []
        (entry,) = data["profiles"]
        assert entry["downgraded"] is True
        assert entry["steps"] == []
        return
    (entry,) = data["profiles"]
    keys = ("id", "title", "source", "dest", "proposed")
    assert [{k: s[k] for k in keys} for s in entry["steps"]] == listed
    assert entry["downgraded"] is False
    assert entry["metadata_lags"] is (profile_id == LAGGING)


def test_shapes_cover_what_they_claim(site, shapes):
    """The shapes are what their names say, as GenericSetup sees them."""
    setup = site.portal_setup
    listed = {p: list(_flat(setup.listUpgrades(p))) for p in REWIND}
    # Several steps to one destination, in sortkey order.
    assert [i["sortkey"] for i in listed[f"{PREFIX}samedest"][:3]] == [1, 2, 3]
    # A step whose checker says no is listed, not proposed.
    never = [i for i in listed[f"{PREFIX}checker"] if "does not" in i["title"]]
    assert never and not never[0]["proposed"]
    # Past metadata.xml, and nothing for a downgraded profile.
    assert _version(listed[LAGGING][-1]["dest"]) == "1101"
    assert setup.getVersionForProfile(LAGGING) == "1100"
    assert listed[DOWNGRADED] == []


DOORS = {
    "api": None,
    "all": {"profiles": "all"},
    "all-profile": {"profiles": "all", "commit": "profile"},
    "all-step": {"profiles": "all", "commit": "step"},
    "named": {"profiles": [p for p in ORDER if p != DOWNGRADED]},
    "steps": "every listed step id",
}


@pytest.mark.parametrize("door", DOORS)
def test_run_ends_where_upgrade_profile_ends(
    site, api, shapes, sync, as_owner, state, compare, door
):
    ids = [
        s["id"]
        for p in api.get("/@upgrade").json()["profiles"]
        for s in p["steps"]
        if p["id"] in REWIND
    ]
    _plone_upgrade(site, as_owner)
    plone = state(site)
    transaction.abort()
    assert plone["profile_versions"][LAGGING] == ("1101",)
    assert plone["profile_versions"][EXTRA] == ("2",)

    if door == "api":
        with as_owner():
            result = engine.upgrade(site, Selection(profiles="all"))
        assert result.ok and result.committed
        transaction.commit()
    else:
        body = {"steps": ids} if door == "steps" else DOORS[door]
        response = api.post("/@upgrade", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["committed"] is True
    sync()
    compare(plone, state(site))
    after = api.get("/@upgrade").json()
    assert not [p for p in after["profiles"] if p["id"] in REWIND and p["steps"]]
    assert after["needs_upgrade"] is False


def test_a_lagging_profile_at_its_last_step_is_not_downgraded(
    api, shapes, rewind, snapshot
):
    """The plone.volto 6.0.1 shape after its 1101 steps ran (by any door)."""
    rewind({LAGGING: "1101"})

    data = api.get("/@upgrade", params={"profile": LAGGING}).json()

    assert data["profiles"] == []
    response = api.post("/@upgrade", json={"profiles": [LAGGING]})
    assert response.status_code == 200, response.text
    assert response.json()["steps"] == []
    before = snapshot()
    refused = api.post("/@upgrade", json={"stamp": [LAGGING]})
    assert refused.status_code == 400
    assert refused.json()["type"] == "BadRequest"
    assert "not downgraded" in refused.json()["message"]
    assert snapshot() == before
    assert api.get("/@upgrade/history").json()["items_total"] == 1
