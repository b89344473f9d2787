"""Parity with Plone: the end state of a run compared with Plone's own.

Each test upgrades one rewound site twice: with Plone's own API
(``portal_migration.upgrade``, ``portal_setup.upgradeProfile``), read what it
left, abort; then with this add-on, read again, compare. :func:`site_state`
reads what an upgrade can change; :func:`differences` names each difference.
:func:`check_report` holds a change report against two states; the
``plone60`` fixture opens copies of a database made by Plone 6.0.
"""

from AccessControl.SecurityManagement import getSecurityManager
from AccessControl.SecurityManagement import newSecurityManager
from AccessControl.SecurityManagement import setSecurityManager
from AccessControl.users import UnrestrictedUser
from Acquisition import aq_base
from collections import UserList
from collections.abc import Mapping
from collective.upgradeapi import compat
from collective.upgradeapi.testing import steps
from pathlib import Path
from plone.app.testing import SITE_OWNER_NAME
from plone.registry.interfaces import IRegistry
from plone.testing.zope import login
from plone.testing.zope import logout
from Testing.makerequest import makerequest
from ZODB.FileStorage import FileStorage
from zope.component import getUtility
from zope.component.hooks import getSite
from zope.component.hooks import setSite
from zope.event import notify
from zope.globalrequest import getRequest
from zope.globalrequest import setRequest
from zope.traversing.interfaces import BeforeTraverseEvent

import contextlib
import gzip
import pytest
import shutil
import transaction
import ZODB


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


# -- the change report against the state ---------------------------------------

MISSING = object()
#: The sections of the state the change report covers. What it does not cover
#: (local components, the workflows' own definitions, the markers of the test
#: steps, content beyond the catalog's size) is left out of the comparison.
COVERED = (
    "profile_versions",
    "registry_records",
    "catalog_state",
    "type_infos",
    "actions",
    "role_map",
    "workflows",
)


def changed_keys(before, after):
    """Per covered section, the keys whose value differs."""
    return {
        section: {
            key
            for key in before[section].keys() | after[section].keys()
            if before[section].get(key, MISSING) != after[section].get(key, MISSING)
        }
        for section in COVERED
    }


def _names(part):
    return set(part.get("added", ())) | set(part.get("removed", ()))


def _count(report, verb):
    by_type = report.get("content", {}).get(verb, {})
    return sum(entry["count"] for entry in by_type.values())


def reported_keys(report):
    """The same keys, as the change report names them."""
    catalog = report.get("catalog", {})
    actions = report.get("actions", {})
    moved = _names(actions)
    chains = report.get("workflows", {}).get("chains", {})
    return {
        "profile_versions": set(report.get("versions", {})),
        "registry_records": _names(report.get("registry", {}))
        | set(report.get("registry", {}).get("changed", {})),
        "catalog_state": {
            f"index {name}" for name in _names(catalog.get("indexes", {}))
        }
        | ({"metadata"} if catalog.get("metadata") else set())
        | ({"size"} if _count(report, "added") != _count(report, "removed") else set()),
        "type_infos": _names(report.get("types", {}))
        | set(report.get("types", {}).get("changed", {})),
        "actions": {
            f"portal_actions{path}" for path in moved | set(actions.get("changed", {}))
        }
        | {f"portal_actions{path.rsplit('/', 1)[0]} (order)" for path in moved},
        "role_map": set(report.get("role_map", {})),
        "workflows": {
            "(default chain)" if name == "(default)" else f"chain {name}"
            for part in chains.values()
            for name in part
        },
    }


def check_report(report, before, after, setup):
    """Assert that the change ``report`` names exactly the keys that changed
    from the state ``before`` to ``after`` in :data:`COVERED`; return them.

    The state reads the versions of profiles with upgrade steps and of core
    add-ons; the report also those of profiles a step installed: their new
    version is checked against ``setup`` (``portal_setup``) instead.
    """
    real = changed_keys(before, after)
    reported = reported_keys(report)
    for profile_id in reported["profile_versions"] - set(after["profile_versions"]):
        old, new = report["versions"][profile_id]
        assert old == "unknown"
        assert ".".join(setup.getLastVersionForProfile(profile_id)) == new
        reported["profile_versions"].discard(profile_id)
    wrong = [
        f"{section}: changed, not reported: {sorted(real[section] - keys)}; "
        f"reported, not changed: {sorted(keys - real[section])}"
        for section, keys in reported.items()
        if keys != real[section]
    ]
    assert not wrong, "The change report is wrong:\n" + "\n".join(wrong)
    return real


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

    def compare(plone, addon, message="Plone and this add-on differ"):
        diff = differences(plone, addon)
        assert not diff, f"{message}:\n" + "\n".join(diff)

    return compare


@pytest.fixture
def report_truth():
    """:func:`check_report`, for the tests."""
    return check_report


#: A database made by Plone 6.0.15: see ``scripts/make-plone60-fixture.py``.
PLONE60 = Path(__file__).parent.parent / "fixtures" / "plone60.fs.gz"


@contextlib.contextmanager
def _open_site(path):
    """The site ``Plone`` of the FileStorage at ``path``, as the in-process
    door opens one: a request at the top, the site hook and the browser layers
    set (``BeforeTraverseEvent``), a Manager working. Closed afterwards, all
    uncommitted work aborted, the previous site hook, request and security
    context put back."""
    previous = getSite(), getRequest(), getSecurityManager()
    db = ZODB.DB(FileStorage(str(path)))
    connection = db.open()
    try:
        app = makerequest(connection.root()["Application"])
        app.REQUEST["PARENTS"] = [app]
        setRequest(app.REQUEST)
        manager = UnrestrictedUser("upgrader", "", ["Manager"], [])
        newSecurityManager(app.REQUEST, manager.__of__(app.acl_users))
        site = app["Plone"]
        notify(BeforeTraverseEvent(site, app.REQUEST))
        yield site
    finally:
        transaction.abort()
        connection.close()
        db.close()
        setSite(previous[0])
        setRequest(previous[1])
        setSecurityManager(previous[2])


@pytest.fixture
def plone60(functional, tmp_path):
    """``with plone60(name) as site``: the Plone 6.0 site of a copy of the
    database :data:`PLONE60` of its own (unpacked on first use, reopened from
    disk afterwards), opened in this process (the test layer loaded the code).
    """

    def plone60(name):
        path = tmp_path / f"{name}.fs"
        if not path.exists():
            with gzip.open(PLONE60, "rb") as source, path.open("wb") as target:
                shutil.copyfileobj(source, target)
        return _open_site(path)

    return plone60
