"""The private names this package relies on still exist upstream.

Each test names what it guards; when one fails after an upgrade of Plone,
``transaction`` or ZODB, the module named in the test is the one to adapt.
"""

from collective.upgradeapi import compat
from collective.upgradeapi.engine import txn
from Products.CMFPlone.MigrationTool import MigrationTool

import transaction
import ZODB.Connection


def test_plone_version_is_a_supported_line():
    assert compat.PLONE_VERSION in {(6, 0), (6, 1), (6, 2)}


def test_migration_tool_private_names(portal):
    """compat.py: the core upgrade's helpers (6.2) or inline parts (6.0/6.1)."""
    migration = portal.portal_migration
    assert hasattr(MigrationTool, "_needRecatalog")
    assert hasattr(MigrationTool, "_needUpdateRole")
    if compat.PLONE_VERSION >= (6, 2):
        assert callable(MigrationTool._upgrade_recatalog)
        assert callable(MigrationTool._upgrade_roles)
        assert callable(migration.get_pre_addon_list)
    else:
        from Products.CMFPlone.factory import _DEFAULT_PROFILE
        from Products.CMFPlone.MigrationTool import ADDON_LIST

        assert _DEFAULT_PROFILE == "Products.CMFPlone:plone"
        assert len(ADDON_LIST) > 5


def test_core_helpers_answer_on_this_version(portal):
    migration = portal.portal_migration
    assert compat.core_profile_id(migration) == "Products.CMFPlone:plone"
    pre, post = compat.core_addon_lists(migration)
    ids = [addon.profile_id for addon in post]
    assert "plone.app.contenttypes:default" in ids
    assert all(hasattr(addon, "safe") for addon in [*pre, *post])


def test_recatalog_and_role_update_clear_their_flags(portal):
    migration = portal.portal_migration
    migration._needRecatalog = 1
    migration._needUpdateRole = 1
    assert migration.needRecatalog() and migration.needUpdateRole()

    compat.recatalog(migration)
    compat.update_role_mappings(migration)

    assert not migration.needRecatalog()
    assert not migration.needUpdateRole()


def test_transaction_manager_internals():
    """engine/txn.py: the thread manager's ``manager`` attribute, and the
    ``_txn`` / ``_synchs`` of ``TransactionManager`` its subclass uses."""
    assert isinstance(transaction.manager.manager, transaction.TransactionManager)
    manager = txn.RunTransactionManager()
    assert manager._txn is None
    assert hasattr(manager._synchs, "map")
    begun = manager.begin()
    assert isinstance(begun, txn.RunTransaction)
    assert manager.get() is begun
    begun.step = "a step"
    assert manager.begin() is begun, "begin inside a step goes on"
    begun.step = None
    begun.finish(commit=False)
    assert manager._txn is None


def test_connection_transaction_manager_attribute(portal):
    """engine/txn.py: ZODB keeps the manager a connection joins in an attribute."""
    connection = portal._p_jar
    assert isinstance(connection, ZODB.Connection.Connection)
    assert isinstance(connection.transaction_manager, transaction.TransactionManager)


def test_write_detection_internals(portal):
    """doors/hold.py: how the write hold sees that a request wrote."""
    txn = transaction.get()
    assert isinstance(txn._resources, list)
    connection = portal._p_jar
    assert isinstance(connection._registered_objects, list)
    assert isinstance(connection._added, dict)
    assert hasattr(connection, "_savepoint_storage")
    portal.title = portal.title + " (changed)"
    assert connection in txn._resources
    assert portal in connection._registered_objects
