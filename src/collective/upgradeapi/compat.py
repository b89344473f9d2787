"""What differs between Plone 6.0, 6.1 and 6.2, in one place.

Plone's own upgrade (``portal_migration.upgrade``) runs the same sequence on
every Plone 6: the "pre" core add-ons (6.2 only), the core profile's steps,
the core add-ons, then a catalog rebuild and a workflow role update when a
step asked for them. Plone 6.2 split that sequence into helper methods
(``get_profile``, ``get_pre_addon_list``, ``get_addon_list``,
``_upgrade_recatalog``, ``_upgrade_roles``); 6.0 and 6.1 do the same work
inline in ``upgrade()``, with the module-level ``ADDON_LIST`` and
``factory._DEFAULT_PROFILE``.

The functions here answer with the same result on each version, so the rest
of the package never asks which Plone it runs on.

:data:`PRIVATE_NAMES` lists every private name of another library that this
package uses, wherever it is used; ``tests/engine/test_compat.py`` fails when an
upstream release removes or renames one of them.
"""

from importlib.metadata import version as distribution_version
from Products.CMFCore.utils import getToolByName


#: The Plone version line this process runs: ``(6, 0)``, ``(6, 1)``, ``(6, 2)``.
PLONE_VERSION = tuple(
    int(part) for part in distribution_version("Products.CMFPlone").split(".")[:2]
)

#: Plone 6.2 and later: ``upgrade()`` calls helper methods we can call too.
SPLIT_UPGRADE = PLONE_VERSION >= (6, 2)

_TOOL = "Products.CMFPlone.MigrationTool.MigrationTool"

#: Every private (or undocumented) name of another library this package uses,
#: as ``(dotted name, module of this package that uses it)``, per Plone line.
#: A dotted name is a module, then attributes; an attribute that objects get
#: in ``__init__`` is named on their class.
PRIVATE_NAMES = {
    "6.0/6.1/6.2": (
        # Zope: the Authorization header, kept out of the environment
        ("ZPublisher.HTTPRequest.HTTPRequest._auth", "services/csrf.py"),
        # PAS: the users a request's credentials authenticate
        (
            "Products.PluggableAuthService.PluggableAuthService."
            "PluggableAuthService._extractUserIds",
            "services/csrf.py",
        ),
        # transaction: the run's own manager (a subclass)
        ("transaction.TransactionManager._txn", "engine/txn.py"),
        ("transaction.TransactionManager._synchs", "engine/txn.py"),
        # transaction and ZODB: what a request's transaction changed
        ("transaction.Transaction._resources", "doors/hold.py"),
        ("ZODB.Connection.Connection._registered_objects", "doors/hold.py"),
        ("ZODB.Connection.Connection._added", "doors/hold.py"),
        ("ZODB.Connection.Connection._savepoint_storage", "doors/hold.py"),
        # logging: every logger created so far (undocumented)
        ("logging.Manager.loggerDict", "engine/logcapture.py"),
        # plone.registry: the values' BTree, read in one walk
        ("plone.registry.registry.Records._values", "engine/pictures.py"),
        # persistent: whether an object was written (documented, underscored)
        ("persistent.Persistent._p_changed", "engine/pictures.py"),
        ("persistent.Persistent._p_jar", "engine/pictures.py"),
        # GenericSetup: every profile's recorded version, read at once
        (
            "Products.GenericSetup.tool.SetupTool._profile_upgrade_versions",
            "engine/pictures.py",
        ),
    ),
    # Products.CMFPlone: the core upgrade's helpers (6.2) or inline parts
    "6.2": (
        (f"{_TOOL}._upgrade_recatalog", "compat.py"),
        (f"{_TOOL}._upgrade_roles", "compat.py"),
    ),
    "6.0/6.1": (
        (f"{_TOOL}._needRecatalog", "compat.py"),
        (f"{_TOOL}._needUpdateRole", "compat.py"),
        ("Products.CMFPlone.factory._DEFAULT_PROFILE", "compat.py"),
    ),
}


def core_profile_id(migration):
    """The site's base (core) profile id, ``Products.CMFPlone:plone`` for Plone."""
    if SPLIT_UPGRADE:
        return migration.get_profile()
    from Products.CMFPlone.factory import _DEFAULT_PROFILE

    return _DEFAULT_PROFILE


def core_addon_lists(migration):
    """Plone's core add-on lists as ``(pre, post)`` lists of ``Addon`` objects.

    ``pre`` is upgraded before the core profile (empty before Plone 6.2),
    ``post`` after it.
    """
    if SPLIT_UPGRADE:
        return list(migration.get_pre_addon_list()), list(migration.get_addon_list())
    from Products.CMFPlone.MigrationTool import ADDON_LIST

    return [], list(ADDON_LIST)


def recatalog(migration):
    """Rebuild the catalog as Plone's upgrade does; raise on error."""
    if SPLIT_UPGRADE:
        migration._upgrade_recatalog(swallow_errors=False)
        return
    # Plone 6.0 and 6.1 do this inline in ``upgrade()``: a full refresh with
    # lowered subtransaction thresholds, restored afterwards.
    catalog = getToolByName(migration, "portal_catalog")
    threshold = catalog.threshold
    pg_threshold = getattr(catalog, "pgthreshold", 0)
    catalog.pgthreshold = 300
    catalog.threshold = 2000
    catalog.refreshCatalog(clear=1)
    catalog.threshold = threshold
    catalog.pgthreshold = pg_threshold
    migration._needRecatalog = 0


def update_role_mappings(migration):
    """Update the workflow role mappings as Plone's upgrade does; raise on error."""
    if SPLIT_UPGRADE:
        migration._upgrade_roles(swallow_errors=False)
        return
    getToolByName(migration, "portal_workflow").updateRoleMappings()
    migration._needUpdateRole = 0
