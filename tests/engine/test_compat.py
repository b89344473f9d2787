"""The private names this package relies on still exist upstream.

Every such name is listed once, in :data:`collective.upgradeapi.compat.PRIVATE_NAMES`,
with the module that uses it: when a test here fails after an upgrade of
Plone, Zope, ``transaction`` or ZODB, that module is the one to adapt. The
other tests check that the names still behave as they are used.
"""

from collective.upgradeapi import compat
from collective.upgradeapi.engine import txn
from pathlib import Path

import collective.upgradeapi
import importlib
import inspect
import pytest
import re
import transaction
import ZODB.Connection


PACKAGE = Path(collective.upgradeapi.__file__).parent


def _lines(label):
    return {tuple(int(part) for part in line.split(".")) for line in label.split("/")}


NAMES = [
    (name, used_in)
    for label, entries in compat.PRIVATE_NAMES.items()
    if compat.PLONE_VERSION in _lines(label)
    for name, used_in in entries
]


def _module(parts):
    """The longest importable module of ``parts``, and how many parts it took."""
    for cut in range(len(parts), 0, -1):
        try:
            return importlib.import_module(".".join(parts[:cut])), cut
        except ImportError:
            continue
    raise AssertionError(f"no module in {'.'.join(parts)}")


def _assigned_in_init(cls, name):
    """Whether ``cls`` or a base assigns ``self.<name>`` in its code."""
    assigned = re.compile(rf"\bself\.{re.escape(name)}\s*=")
    for klass in cls.__mro__:
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if assigned.search(source):
            return True
    return False


def resolve(dotted):
    """Whether ``dotted`` names something of the installed packages."""
    parts = dotted.split(".")
    owner, cut = _module(parts)
    *path, last = parts[cut:]
    for name in path:
        owner = getattr(owner, name)
    if hasattr(owner, last):
        return True
    return isinstance(owner, type) and _assigned_in_init(owner, last)


def test_plone_version_is_a_supported_line():
    assert compat.PLONE_VERSION in {(6, 0), (6, 1), (6, 2)}
    assert all(
        _lines(label) <= {(6, 0), (6, 1), (6, 2)} for label in compat.PRIVATE_NAMES
    )


@pytest.mark.parametrize("name, used_in", NAMES, ids=[name for name, _ in NAMES])
def test_private_name_exists_upstream(name, used_in):
    assert resolve(name), f"{name} (used in {used_in}) is gone: adapt {used_in}"


@pytest.mark.parametrize("name, used_in", NAMES, ids=[name for name, _ in NAMES])
def test_private_name_is_used_where_listed(name, used_in):
    """The list stays true: a module that stops using a name drops its entry."""
    source = (PACKAGE / used_in).read_text()
    last = re.escape(name.rsplit(".", 1)[1])
    assert re.search(rf"\b{last}\b", source), (
        f"{used_in} no longer uses {name}: update compat.PRIVATE_NAMES"
    )


def test_permission_attribute_names_are_as_the_role_map_reads_them():
    """engine/pictures.role_map finds a permission's stored roles by the
    name Zope gives its attribute (``_<name>_Permission``)."""
    from AccessControl.Permission import getPermissionIdentifier

    name = getPermissionIdentifier("Modify portal content")
    assert name.startswith("_") and name.endswith("_Permission")


def test_resolve_tells_a_missing_name():
    assert not resolve("ZODB.Connection.Connection._no_such_attribute")
    assert not resolve("transaction.TransactionManager._no_such_attribute")


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
    connection = portal._p_jar
    assert isinstance(connection._added, dict)
    portal.title = portal.title + " (changed)"
    assert connection in txn._resources
    assert portal in connection._registered_objects
