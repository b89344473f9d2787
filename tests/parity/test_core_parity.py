"""Parity: the add-on's core run leaves the site as Plone's own upgrade does.

``POST @upgrade`` with ``{}`` replays ``portal_migration.upgrade()`` step by
step. These tests run both on the same rewound site and compare what they
leave behind, so that a Plone release that changes its upgrade sequence (a
new helper, a new core add-on, another follow-up after the steps) shows up
here instead of on a customer's site. The same holds in each commit mode and
for every core add-on upgraded on its own (``upgradeProfile``).
"""

from collective.upgradeapi import compat
from Products.GenericSetup.upgrade import normalize_version

import pytest
import transaction


CORE = "Products.CMFPlone:plone"
VOLTO = "plone.volto:default"

#: How many of Plone's own core steps the rewind makes pending, at least.
CORE_STEPS = 25

#: The step the test layer adds to the core profile (see testing/configure.zcml).
TEST_STEP_TITLE = "Core: an ungrouped test step"


# -- the rewind ----------------------------------------------------------------


def _flat(upgrades):
    """GenericSetup's ``listUpgrades`` answer as a flat list of step infos."""
    for item in upgrades:
        yield from item if isinstance(item, list) else [item]


def core_source(site):
    """A core version from which the last :data:`CORE_STEPS` real steps run.

    Read from the upgrade registry of the Plone under test, so it suits 6.0
    (fs 6026), 6.1 (6112) and 6.2 (6205) alike: walk the step groups from the
    file system version backwards until enough steps are pending.
    """
    setup = site.portal_setup
    fs = normalize_version(setup.getVersionForProfile(CORE))
    counts = {}
    for info in _flat(setup.listUpgrades(CORE, show_old=True)):
        if info["title"] == TEST_STEP_TITLE or info["source"] is None:
            continue
        if info["dest"] is not None and normalize_version(info["dest"]) > fs:
            continue
        source = ".".join(info["source"])
        counts[source] = counts.get(source, 0) + 1
    pending = 0
    for source in sorted(counts, key=normalize_version, reverse=True):
        pending += counts[source]
        if pending >= CORE_STEPS:
            return source
    raise AssertionError(f"Only {pending} core steps registered up to {fs}")


def core_addon_ids(site):
    """Plone's core add-ons whose code is there, as Plone's upgrade takes them."""
    pre, post = compat.core_addon_lists(site.portal_migration)
    return [addon.profile_id for addon in [*pre, *post] if addon.safe()]


def addon_sources(site, profile_ids=None):
    """Older versions for installed add-ons (the core ones by default).

    Each is rewound to the second newest source of its steps (or the only
    one), so that its last one or two step groups are pending.
    """
    setup = site.portal_setup
    sources = {}
    for profile_id in profile_ids or core_addon_ids(site):
        current = setup.getLastVersionForProfile(profile_id)
        if current == "unknown":
            continue
        current = normalize_version(current)
        found = {
            ".".join(info["source"])
            for info in _flat(setup.listUpgrades(profile_id, show_old=True))
            if info["source"] is not None
            and normalize_version(info["source"]) < current
            and (info["dest"] is None or normalize_version(info["dest"]) <= current)
        }
        if found:
            ordered = sorted(found, key=normalize_version)
            sources[profile_id] = ordered[-2] if len(ordered) > 1 else ordered[0]
    return sources


def add_content(site):
    """A folder with a published page: work for the catalog and role updates.

    The test site has no workflow; these types get Plone's default one.
    """
    site.portal_workflow.setChainForPortalTypes(
        ("Folder", "Document"), "simple_publication_workflow"
    )
    site.invokeFactory("Folder", "parity", title="Parity")
    site.parity.invokeFactory("Document", "page", title="A page")
    site.portal_workflow.doActionFor(site.parity.page, "publish")


# -- the tests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{}, {"commit": "profile"}, {"commit": "step"}],
    ids=["run", "profile", "step"],
)
def test_core_run_matches_plones_own_upgrade(
    site, api, rewind, sync, as_owner, state, compare, body
):
    setup = site.portal_setup
    migration = site.portal_migration
    fs = migration.getFileSystemVersion()
    source = core_source(site)
    addons = addon_sources(site)
    assert addons, "no core add-on has upgrade steps to rewind"
    with as_owner():
        add_content(site)
    # As an older core step would: ask for the follow-ups after the steps.
    migration._needRecatalog = 1
    migration._needUpdateRole = 1
    rewind({CORE: source, **addons})
    pending = [
        info
        for info in _flat(setup.listUpgrades(CORE, dest=fs))
        if info["title"] != TEST_STEP_TITLE
    ]
    assert len(pending) >= CORE_STEPS

    # Plone's own upgrade, in this process, as the site owner. It does not
    # commit (checked below): abort brings back the rewound state. On 6.2 it
    # is wrapped by ``postonly``, which lets a call without a request pass.
    with as_owner():
        migration.upgrade(REQUEST=None, swallow_errors=False)
    assert not migration.needUpgrading()
    plone = state(site)
    transaction.abort()
    assert setup.getLastVersionForProfile(CORE) == tuple(source.split("."))
    assert migration._needRecatalog and migration._needUpdateRole
    for profile_id, version in addons.items():
        assert setup.getLastVersionForProfile(profile_id) == tuple(version.split("."))

    # The add-on's core run, over HTTP.
    response = api.post("/@upgrade", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["committed"] is True
    sync()
    addon = state(site)

    # The runs did real work.
    for each in (plone, addon):
        assert each["profile_versions"][CORE] == (fs,)
        for profile_id, version in addons.items():
            after = each["profile_versions"][profile_id]
            assert after != tuple(version.split(".")), profile_id
    core_steps = [s for s in data["steps"] if s["profile"] == CORE]
    assert len(core_steps) > len(pending)  # and the follow-ups, the test step
    assert {s["profile"] for s in data["steps"]} >= set(addons)
    assert {s["status"] for s in data["steps"]} == {"done"}
    assert {"recatalog", "update-role-mappings"} <= {s["id"] for s in core_steps}
    assert len(addon["content"]) == 6  # the site root, the folder and the page
    compare(plone, addon)


@pytest.fixture
def volto(site, as_owner, sync):
    """plone.volto installed: the site is a Volto site."""
    with as_owner():
        site.portal_setup.runAllImportStepsFromProfile("profile-plone.volto:default")
    transaction.commit()
    sync()


@pytest.mark.parametrize("body", [{}, {"profiles": "all"}], ids=["core", "all"])
def test_a_volto_site_matches_plones_own_upgrade(
    site, api, rewind, sync, as_owner, state, compare, volto, body
):
    """plone.volto 6.0.1 declares 1100 and its steps go to 1101: Plone's
    upgrade (which upgrades plone.volto as a core add-on on 6.2) ends there."""
    from collective.upgradeapi.testing.versions import LAST

    setup = site.portal_setup
    source = addon_sources(site, [VOLTO])[VOLTO]
    rewind({CORE: LAST, VOLTO: source})
    last = [i["dest"] for i in _flat(setup.listUpgrades(VOLTO))][-1]
    with as_owner():
        site.portal_migration.upgrade(REQUEST=None, swallow_errors=False)
        if VOLTO not in core_addon_ids(site):
            setup.upgradeProfile(VOLTO)  # not a core add-on on this Plone
    plone = state(site)
    transaction.abort()
    assert plone["profile_versions"][VOLTO] == last

    response = api.post("/@upgrade", json=body)
    assert response.status_code == 200, response.text
    if body == {}:
        response = api.post("/@upgrade", json={"profiles": [VOLTO]})
        assert response.status_code == 200, response.text
    sync()
    compare(plone, state(site))


def test_each_core_addon_alone_matches_upgrade_profile(
    site, api, rewind, sync, as_owner, state, compare, volto
):
    """Each core add-on, rewound, upgraded alone: ``portal_setup.upgradeProfile``
    (what Plone's upgrade and its Add-ons control panel call) against
    ``{"profiles": [id]}``; the listing against ``listUpgrades``."""
    setup = site.portal_setup
    core_addons = addon_sources(site, [*core_addon_ids(site), VOLTO])
    assert VOLTO in core_addons
    for profile_id, version in sorted(core_addons.items()):
        rewind({profile_id: version})
        listed = [
            (i["id"], i["proposed"], ".".join(i["dest"] or ("*",)))
            for i in _flat(setup.listUpgrades(profile_id))
        ]
        got = api.get("/@upgrade", params={"profile": profile_id}).json()
        (entry,) = got["profiles"]
        assert [
            (s["id"], s["proposed"], s["dest"] or "*") for s in entry["steps"]
        ] == listed, profile_id
        with as_owner():
            setup.upgradeProfile(profile_id)
        plone = state(site)
        transaction.abort()
        response = api.post("/@upgrade", json={"profiles": [profile_id]})
        assert response.status_code == 200, response.text
        sync()
        compare(plone, state(site))
        assert plone["profile_versions"][profile_id] != (version,)


def test_core_listing_is_what_portal_migration_runs(site, api, rewind):
    """The core profile's steps and order are ``portal_migration``'s; their
    ``proposed`` flags are ``portal_setup``'s (its Upgrades tab)."""
    from collective.upgradeapi.testing.versions import OLD

    rewind({CORE: OLD})
    runs = [info["id"] for info in _flat(site.portal_migration.listUpgrades())]
    proposed = {
        info["id"]: info["proposed"]
        for info in _flat(site.portal_setup.listUpgrades(CORE))
    }

    data = api.get("/@upgrade", params={"profile": CORE}).json()

    (entry,) = data["profiles"]
    assert [step["id"] for step in entry["steps"]] == runs
    assert {step["id"]: step["proposed"] for step in entry["steps"]} == {
        step_id: proposed[step_id] for step_id in runs
    }
    assert any(step["proposed"] for step in entry["steps"])
