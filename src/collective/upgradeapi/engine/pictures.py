"""Pictures of a site's configuration, for the change report (:mod:`.changes`).

Each reader of :data:`READERS` reads one part (registry, catalog, types,
workflows, actions, the site's role map, the profiles' versions) through the
tools' own API and returns ``(key, value)``: ``value`` the plain data
:func:`.changeset.compare` compares, ``key`` what tells, at the next picture
in the same transaction, whether the part must be read again (:func:`take`).
For types, actions and the role map, the key holds the objects read and their
stored states: a part is read again only when one of them was written since.
"""

from AccessControl.Permission import getPermissionIdentifier
from Acquisition import aq_base
from collective.upgradeapi.engine.profiles import version_str
from OFS.ObjectManager import ObjectManager
from plone.registry.interfaces import IRegistry
from ZODB.POSException import ConflictError
from zope.component import getUtility

import copy
import logging


logger = logging.getLogger("collective.upgradeapi")


def _state(obj):
    """A persistent object's stored attributes, a copy: equal to an older copy
    unless an attribute was set since (ZODB notices no other change either)."""
    return aq_base(obj).__getstate__()


def _tree(obj, path="", found=None, deep=True):
    """``{path: (object, stored state)}`` of ``obj`` and of every object in it
    (``deep``)."""
    found = {} if found is None else found
    found[path] = (aq_base(obj), _state(obj))
    for name in obj.objectIds() if deep and isinstance(obj, ObjectManager) else ():
        _tree(getattr(obj, name), f"{path}/{name}", found)
    return found


def _keyed(old, key, read):
    return old if old is not None and old[0] == key else (key, read())


def _copied(values):
    """``values`` as they are now: a step may change a stored dict or list in
    place (Plone 6.2's step ``update_iimagingschema_fields`` adds to the dict
    of ``plone.picture_variants``), so the picture keeps its own copy."""
    for name, value in values.items():
        if isinstance(value, (dict, list, set)):
            values[name] = copy.deepcopy(value)
    return values


def _unwritten(entry):
    obj = entry[0]
    return obj._p_jar is not None and not obj._p_changed


def _objects(tool, old, clean, read, deep=True):
    """The part of ``tool``'s objects: ``old`` when none of them was written
    since (ZODB flags an object it must store, ``_p_changed``, until the next
    savepoint; ``clean``: none was taken since; an object not stored yet has
    no flag), else as their stored states say (:func:`_keyed`): ``read(tree)``
    of :func:`_tree`."""
    if clean and old is not None and all(map(_unwritten, old[0].values())):
        return old
    tree = _tree(tool, deep=deep)
    return _keyed(old, tree, lambda: read(tree))


def registry(site, old=None, clean=False, written=()):
    """Only the records ``written`` are read again (plone.registry announces
    every write)."""
    if old is not None and not written:
        return old
    # Its values' BTree: records[name] would build a field each.
    values = getUtility(IRegistry, context=site).records._values
    if old is None:
        return None, _copied(dict(values.items()))
    found = dict(old[1])
    for name in written:
        found.pop(name, None)
    found.update(_copied({name: values[name] for name in written if name in values}))
    return None, found


def catalog(site, old=None, clean=False):
    tool = site["portal_catalog"]
    found = {"indexes": set(tool.indexes()), "metadata": set(tool.schema())}
    return None, {**found, "writes": tool.getCounter()}  # Plone counts writes


def types(site, old=None, clean=False):
    tool = site["portal_types"]

    def read(tree):
        return {fti.getId(): dict(fti.propertyItems()) for fti in tool.objectValues()}

    return _objects(tool, old, clean, read)


def workflows(site, old=None, clean=False):
    tool, type_ids = site["portal_workflow"], site["portal_types"].objectIds()
    overrides = [(name, tuple(chain)) for name, chain in tool.listChainOverrides()]
    default = tuple(tool.getDefaultChain())

    def read():
        chains = {name: tuple(tool.getChainForPortalType(name)) for name in type_ids}
        return {
            "ids": set(tool.objectIds()),
            "chains": {"(default)": default, **chains},
        }

    return _keyed(old, (tool.objectIds(), default, overrides, type_ids), read)


def actions(site, old=None, clean=False):
    """Each action's properties by its path (the categories hold the actions)."""

    def read(tree):
        return {
            path: dict(item.propertyItems())
            for path, (item, _) in tree.items()
            if path and item.meta_type != "CMF Action Category"
        }

    return _objects(site["portal_actions"], old, clean, read)


#: Zope's attribute of a permission's roles -> the permission's name.
_PERMISSIONS = {}


def role_map(site, old=None, clean=False):
    """The permissions' roles stored on the site (a list acquires, a tuple
    does not; one not stored there acquires and cannot change unseen), each
    in an attribute ``getPermissionIdentifier`` names (``_<name>_Permission``;
    tests/engine/test_compat.py checks it)."""

    def read(tree):
        found = {}
        for attribute, roles in tree[""][1].items():
            if attribute.startswith("_") and attribute.endswith("_Permission"):
                if attribute not in _PERMISSIONS:
                    for item in site.ac_inherited_permissions(1):
                        _PERMISSIONS[getPermissionIdentifier(item[0])] = item[0]
                found[_PERMISSIONS.get(attribute, attribute)] = roles
        return found

    return _objects(site, old, clean, read, deep=False)


def versions(site, old=None, clean=False):
    """Every profile's recorded version at once, as text (GenericSetup's
    ``getLastVersionForProfile`` reads the same mapping)."""
    recorded = site["portal_setup"]._profile_upgrade_versions
    return None, {pid: version_str(version) for pid, version in recorded.items()}


READERS = {
    reader.__name__: reader
    for reader in (registry, catalog, types, workflows, actions, role_map, versions)
}


def take(site, old=None, written=(), clean=False):
    """A picture: ``(key, value)`` of each of :data:`READERS` (``None`` when
    it cannot be read). With ``old``, the picture before in the same
    transaction, a part whose key (what tells whether it changed) is
    unchanged is taken from ``old``, not read again; ``written``: the registry
    records written since, ``clean``: no savepoint was taken since."""
    picture = {}
    for name, reader in READERS.items():
        part = None if old is None else old[name]
        try:
            extra = (written,) if name == "registry" else ()
            picture[name] = reader(site, part, clean, *extra)
        except ConflictError:
            raise
        except Exception:
            logger.warning("Cannot read the %s for the change report.", name)
            picture[name] = None
    return picture


class Savepoints:
    """Joined to a run's transaction, counts the savepoints taken in it and
    the rollbacks (after either, ZODB's flags no longer tell what was written
    since a picture: :func:`_objects`)."""

    def __init__(self):
        self.count = 0
        self.transaction = None

    def join(self, txn):
        if self.transaction is not txn:
            txn.join(self)
            self.transaction = txn

    def savepoint(self):
        self.count += 1
        return self  # its rollback()

    def abort(self, txn=None):
        self.count += 1

    rollback = tpc_abort = abort

    def commit(self, txn):
        pass

    tpc_begin = tpc_vote = tpc_finish = commit

    def sortKey(self):  # noqa: N802 (the data manager interface's name)
        return "collective.upgradeapi.pictures"
