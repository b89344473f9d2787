"""Parity with Plone: the end state of a run compared with Plone's own.

Each test upgrades one rewound site twice: with Plone's own API
(``portal_migration.upgrade``, ``portal_setup.upgradeProfile``), read what it
left, abort; then with this add-on, read again, compare. :func:`site_state`
reads what an upgrade can change; :func:`differences` names each difference.
"""

from Acquisition import aq_base
from collections import UserList
from collections.abc import Mapping
from collective.upgradeapi import compat
from collective.upgradeapi.testing import steps
from plone.app.testing import SITE_OWNER_NAME
from plone.registry.interfaces import IRegistry
from plone.testing.zope import login
from plone.testing.zope import logout
from zope.component import getUtility

import contextlib
import pytest


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


def markers(site):
    """The markers the test profiles' steps left, in the order they ran."""
    return {"(in order)": tuple(steps.markers(site))}


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
    markers,
    migration_flags,
)


def site_state(site):
    """What an upgrade leaves behind: one dict per section of :data:`SECTIONS`.

    (Not the ``snapshot`` fixture of ``tests/conftest.py``, which reads far
    less.) The markers of the test steps are read in order: the same steps
    must run in the same order.
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
                    f"    Plone:      {left.get(key, missing)!r:.300}\n"
                    f"    this add-on: {right.get(key, missing)!r:.300}"
                )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def as_owner(functional):
    """A context manager: code in it runs as the site owner, as Plone's own
    upgrade forms would (``portal_migration.upgrade`` checks permissions)."""

    @contextlib.contextmanager
    def as_owner():
        login(functional["app"]["acl_users"], SITE_OWNER_NAME)
        try:
            yield
        finally:
            logout()

    return as_owner


@pytest.fixture
def state():
    """:func:`site_state`, for the tests."""
    return site_state


@pytest.fixture
def compare():
    """``compare(plone, addon)``: fail with every difference of two states."""

    def compare(plone, addon):
        diff = differences(plone, addon)
        assert not diff, "Plone and this add-on differ:\n" + "\n".join(diff)

    return compare
