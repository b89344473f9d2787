"""Parity: the add-on's core run leaves the site as Plone's own upgrade does.

``POST @upgrade`` with ``{}`` replays ``portal_migration.upgrade()`` step by
step. This test runs both on the same rewound site and compares what they
leave behind, so that a Plone release that changes its upgrade sequence (a
new helper, a new core add-on, another follow-up after the steps) shows up
here instead of on a customer's site.
"""

from Acquisition import aq_base
from collections import UserList
from collections.abc import Mapping
from collective.upgradeapi import compat
from plone.app.testing import SITE_OWNER_NAME
from plone.registry.interfaces import IRegistry
from plone.testing.zope import login
from plone.testing.zope import logout
from Products.GenericSetup.upgrade import normalize_version
from zope.component import getUtility

import transaction


CORE = "Products.CMFPlone:plone"

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


def addon_sources(site):
    """Older versions for the installed core add-ons that have upgrade steps.

    Each is rewound to the second newest source of its steps (or the only
    one), so that its last one or two step groups are pending.
    """
    setup = site.portal_setup
    pre, post = compat.core_addon_lists(site.portal_migration)
    sources = {}
    for addon in [*pre, *post]:
        profile_id = addon.profile_id
        current = setup.getLastVersionForProfile(profile_id)
        if not addon.safe() or current == "unknown":
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


# -- the snapshot --------------------------------------------------------------


def comparable(value):
    """``value`` as plain, hashable, ordered data (sets sorted, lists as tuples)."""
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if isinstance(value, (set, frozenset)):
        return tuple(sorted((comparable(v) for v in value), key=repr))
    if isinstance(value, (list, tuple, UserList)):
        return tuple(comparable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), comparable(v)) for k, v in value.items()))
    return repr(value)


def profile_versions(site):
    """The recorded version of every profile with upgrades and every core add-on."""
    setup = site.portal_setup
    pre, post = compat.core_addon_lists(site.portal_migration)
    ids = set(setup.listProfilesWithUpgrades()) | {a.profile_id for a in pre + post}
    return {pid: comparable(setup.getLastVersionForProfile(pid)) for pid in ids}


def registry_records(site):
    """Every plone.app.registry record: its field type and its value."""
    records = getUtility(IRegistry).records
    return {
        name: (type(records[name].field).__name__, comparable(records[name].value))
        for name in records
    }


def catalog_state(site):
    """Catalog index ids with their meta types and sources, metadata, size."""
    catalog = site.portal_catalog
    state = {
        f"index {index.getId()}": (
            index.meta_type,
            comparable(getattr(index, "getIndexSourceNames", tuple)()),
        )
        for index in catalog.getIndexObjects()
    }
    state["metadata"] = tuple(sorted(catalog.schema()))
    state["size"] = len(catalog)
    return state


def type_infos(site):
    """Every portal_types entry: its class and all its properties, its actions."""
    state = {}
    for fti in site.portal_types.objectValues():
        state[fti.getId()] = (
            type(aq_base(fti)).__name__,
            comparable(dict(fti.propertyItems())),
            tuple(
                (a.getId(), comparable(a.getActionExpression()))
                for a in fti.listActions()
            ),
        )
    return state


def _actions(container, path, state):
    """Add the actions under ``container`` to ``state``, keyed by path."""
    state[f"{path} (order)"] = tuple(container.objectIds())
    for item in container.objectValues():
        item_path = f"{path}/{item.getId()}"
        if item.meta_type == "CMF Action Category":
            _actions(item, item_path, state)
        else:
            state[item_path] = comparable(dict(item.propertyItems()))


def actions(site):
    """portal_actions categories and actions with their properties, in order."""
    state = {}
    _actions(site.portal_actions, "portal_actions", state)
    for configlet in site.portal_controlpanel.listActions():
        state[f"portal_controlpanel/{configlet.getId()}"] = (
            configlet.category,
            comparable(configlet.permissions),
            configlet.visible,
            comparable(configlet.getActionExpression()),
        )
    return state


def role_map(site):
    """The site's permission settings: acquire flag and granted roles."""
    return {
        setting["name"]: (
            bool(setting["acquire"]),
            tuple(
                sorted(
                    role["name"]
                    for role in site.rolesOfPermission(setting["name"])
                    if role["selected"]
                )
            ),
        )
        for setting in site.permission_settings()
    }


def workflows(site):
    """Workflow chains per type, default chain, and each workflow's state rules."""
    wtool = site.portal_workflow
    state = {"(default chain)": tuple(wtool.getDefaultChain())}
    for type_id in site.portal_types.objectIds():
        state[f"chain {type_id}"] = tuple(wtool.getChainForPortalType(type_id))
    for workflow in wtool.objectValues():
        for wf_state in getattr(workflow, "states", {}).objectValues():
            state[f"{workflow.getId()}/{wf_state.getId()}"] = (
                comparable(wf_state.permission_roles),
                tuple(wf_state.transitions),
            )
    return state


def components(site):
    """The site's tools and objects and its local utility registrations."""
    registrations = {
        f"utility {reg.provided.__identifier__} {reg.name!r}": type(
            aq_base(reg.component)
        ).__name__
        for reg in site.getSiteManager().registeredUtilities()
    }
    return {"(object ids)": tuple(sorted(site.objectIds())), **registrations}


def content(site):
    """Each catalogued object: its catalog entry and its own role map."""
    catalog = site.portal_catalog
    state = {}
    query = {"path": "/".join(site.getPhysicalPath())}
    for brain in catalog.unrestrictedSearchResults(query):
        path = brain.getPath()
        state[f"{path} (catalog)"] = (
            comparable(catalog.getIndexDataForRID(brain.getRID())),
            comparable(catalog.getMetadataForRID(brain.getRID())),
        )
        state[f"{path} (roles)"] = comparable(role_map(brain._unrestrictedGetObject()))
    return state


def migration_flags(site):
    """``portal_migration``'s pending follow-ups after a run."""
    migration = site.portal_migration
    return {
        "_needRecatalog": bool(migration._needRecatalog),
        "_needUpdateRole": bool(migration._needUpdateRole),
    }


SECTIONS = (
    profile_versions,
    registry_records,
    catalog_state,
    type_infos,
    actions,
    role_map,
    workflows,
    components,
    content,
    migration_flags,
)


def site_state(site):
    """What an upgrade leaves behind: one dict per section of :data:`SECTIONS`.

    (Not the ``snapshot`` fixture of conftest.py, which reads far less.) Site
    annotations are not read, so the marker the test layer's core step appends
    there (both runs run that step) cannot make the comparison noisy.
    """
    return {section.__name__: section(site) for section in SECTIONS}


def differences(plone, addon, limit=10):
    """The first ``limit`` differing keys of two :func:`site_state` answers.

    One readable entry per key: section, key, and each side's value (cut).
    """
    missing = "<missing>"
    lines = []
    for section in plone:
        left, right = plone[section], addon[section]
        for key in sorted(set(left) | set(right)):
            if left.get(key, missing) != right.get(key, missing):
                lines.append(
                    f"{section}[{key!r}]:\n"
                    f"    Plone's upgrade: {left.get(key, missing)!r:.300}\n"
                    f"    POST @upgrade:   {right.get(key, missing)!r:.300}"
                )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


# -- the test ------------------------------------------------------------------


def test_core_run_matches_plones_own_upgrade(functional, site, api, rewind, sync):
    setup = site.portal_setup
    migration = site.portal_migration
    fs = migration.getFileSystemVersion()
    source = core_source(site)
    addons = addon_sources(site)
    assert addons, "no core add-on has upgrade steps to rewind"
    login(functional["app"]["acl_users"], SITE_OWNER_NAME)
    try:
        add_content(site)
    finally:
        logout()
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
    login(functional["app"]["acl_users"], SITE_OWNER_NAME)
    try:
        migration.upgrade(REQUEST=None, swallow_errors=False)
    finally:
        logout()
    assert not migration.needUpgrading()
    plone = site_state(site)
    transaction.abort()
    assert setup.getLastVersionForProfile(CORE) == tuple(source.split("."))
    assert migration._needRecatalog and migration._needUpdateRole
    for profile_id, version in addons.items():
        assert setup.getLastVersionForProfile(profile_id) == tuple(version.split("."))

    # The add-on's core run, over HTTP.
    response = api.post("/@upgrade", json={})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["committed"] is True
    sync()
    addon = site_state(site)

    # The runs did real work.
    for state in (plone, addon):
        assert state["profile_versions"][CORE] == (fs,)
        for profile_id, version in addons.items():
            after = state["profile_versions"][profile_id]
            assert after != tuple(version.split(".")), profile_id
    core_steps = [s for s in data["steps"] if s["profile"] == CORE]
    assert len(core_steps) > len(pending)  # and the follow-ups, the test step
    assert {s["profile"] for s in data["steps"]} >= set(addons)
    assert {s["status"] for s in data["steps"]} == {"done"}
    assert {"recatalog", "update-role-mappings"} <= {s["id"] for s in core_steps}
    assert len(addon["content"]) == 6  # the site root, the folder and the page

    diff = differences(plone, addon)
    assert not diff, "POST @upgrade and Plone's upgrade differ:\n" + "\n".join(diff)
