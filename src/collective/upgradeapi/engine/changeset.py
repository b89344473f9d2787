"""A change report as plain data (:mod:`.changes` records it).

Each reader of :data:`READERS` takes a picture of one part of a site's
configuration through the tools' own API; :func:`compare` turns two pictures
into the report's categories (a part that cannot be read is "unknown", never
"unchanged"); :func:`summary` says a report in one line; :func:`bound` cuts it.
"""

from AccessControl.Permission import getPermissionIdentifier
from Acquisition import aq_base
from OFS.ObjectManager import ObjectManager
from plone.registry.interfaces import IRegistry
from ZODB.POSException import ConflictError
from zope.component import getUtility

import copy
import json
import logging


logger = logging.getLogger("collective.upgradeapi")


MISSING = object()

#: Values longer than this (as JSON) are shortened in a report.
VALUE_LIMIT = 200


def plain(value):
    """``value`` as JSON data: sets sorted, tuples as lists, others as text."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return repr(value)


def short(value):
    """:func:`plain`, and as cut text when longer than :data:`VALUE_LIMIT`."""
    data = plain(value)
    text = json.dumps(data, sort_keys=True)
    if len(text) <= VALUE_LIMIT:
        return data
    return f"{text[:VALUE_LIMIT]}… ({len(text)} characters)"


# -- readers: site -> picture --------------------------------------------------
#
# A reader returns ``(key, value)``: ``value`` the data compared, ``key`` what
# tells, next time, whether the part must be read again: with ``old``, its
# last answer in the same transaction, a part whose key is unchanged is not.


def _state(obj):
    """A persistent object's stored attributes, a copy: equal to an older copy
    unless an attribute was set since (ZODB notices no other change either)."""
    return aq_base(obj).__getstate__()


def _tree(obj, path="", found=None):
    """``{path: stored state}`` of ``obj`` and of every object in it."""
    found = {} if found is None else found
    found[path] = _state(obj)
    for name in obj.objectIds() if isinstance(obj, ObjectManager) else ():
        _tree(getattr(obj, name), f"{path}/{name}", found)
    return found


def _keyed(old, key, read):
    return old if old is not None and old[0] == key else (key, read())


def _copy(value):
    """A stored value as it is now: a step may change a stored dict or list in
    place (Plone 6.2's step ``update_iimagingschema_fields`` adds to the dict
    of ``plone.picture_variants``), so the picture keeps its own copy."""
    return copy.deepcopy(value) if isinstance(value, (dict, list, set)) else value


def registry(site, old=None, written=()):
    """The registry's values; with ``old``, only the records ``written``
    are read again (plone.registry announces every write)."""
    if old is not None and not written:
        return old
    # Its values' BTree: records[name] would build a field each.
    values = getUtility(IRegistry, context=site).records._values
    if old is None:
        return None, {name: _copy(value) for name, value in values.items()}
    found = dict(old[1])
    for name in written:
        found[name] = _copy(values.get(name, MISSING))
        if found[name] is MISSING:
            del found[name]
    return None, found


def catalog(site, old=None):
    tool = site["portal_catalog"]
    return None, {
        "indexes": set(tool.indexes()),
        "metadata": set(tool.schema()),
        "writes": tool.getCounter(),  # Plone's count of the entries written
    }


def types(site, old=None):
    tool = site["portal_types"]
    return _keyed(
        old,
        _tree(tool),
        lambda: {fti.getId(): dict(fti.propertyItems()) for fti in tool.objectValues()},
    )


def workflows(site, old=None):
    tool, type_ids = site["portal_workflow"], site["portal_types"].objectIds()
    overrides = [(name, tuple(chain)) for name, chain in tool.listChainOverrides()]
    key = (tool.objectIds(), tuple(tool.getDefaultChain()), overrides)

    def read():
        chains = {"(default)": tuple(tool.getDefaultChain())}
        for type_id in type_ids:
            chains[type_id] = tuple(tool.getChainForPortalType(type_id))
        return {"ids": set(tool.objectIds()), "chains": chains}

    return _keyed(old, (*key, type_ids), read)


def _actions(container, path="", found=None):
    found = {} if found is None else found
    for item in container.objectValues():
        if item.meta_type == "CMF Action Category":
            _actions(item, f"{path}/{item.getId()}", found)
        else:
            found[f"{path}/{item.getId()}"] = dict(item.propertyItems())
    return found


def actions(site, old=None):
    tool = site["portal_actions"]
    return _keyed(old, _tree(tool), lambda: _actions(tool))


#: Zope's attribute of a permission's roles -> the permission's name.
_PERMISSIONS = {}


def role_map(site, old=None):
    """The role settings stored on the site (Zope keeps each permission's
    roles in an attribute of the object; a list acquires, a tuple does not).
    Permissions not set there acquire their roles and cannot change unseen.
    The attributes are named as ``getPermissionIdentifier`` names them
    (``_<name>_Permission``; tests/engine/test_compat.py checks it)."""

    def read():
        found = {}
        for attribute, roles in state.items():
            if attribute.startswith("_") and attribute.endswith("_Permission"):
                if attribute not in _PERMISSIONS:
                    for item in site.ac_inherited_permissions(1):
                        _PERMISSIONS[getPermissionIdentifier(item[0])] = item[0]
                found[_PERMISSIONS.get(attribute, attribute)] = roles
        return found

    state = _state(site)
    return _keyed(old, state, read)


READERS = {
    reader.__name__: reader
    for reader in (registry, catalog, types, workflows, actions, role_map)
}


def take(site, old=None, written=()):
    """A picture of every part of :data:`READERS` (``None`` for a part that
    cannot be read); with the picture ``old`` of the same transaction, what
    did not change is taken from it (see the readers)."""
    picture = {}
    for name, reader in READERS.items():
        part = None if old is None else old[name]
        try:
            if name == "registry":
                picture[name] = reader(site, part, written)
            else:
                picture[name] = reader(site, part)
        except ConflictError:
            raise
        except Exception:
            logger.warning("Cannot read the %s for the change report.", name)
            picture[name] = None
    return picture


# -- comparing -----------------------------------------------------------------


def _kept(diff):
    return {key: value for key, value in diff.items() if value}


def _sets(before, after):
    """``{"added", "removed"}`` of two collections, sorted."""
    return _kept(
        {
            "added": sorted(set(after) - set(before), key=str),
            "removed": sorted(set(before) - set(after), key=str),
        }
    )


def _mapping(before, after, changed):
    """Added, removed (with values) and changed keys of two dicts."""
    diff = {
        "added": {k: short(after[k]) for k in sorted(after.keys() - before.keys())},
        "removed": {k: short(before[k]) for k in sorted(before.keys() - after.keys())},
        "changed": {},
    }
    for key in sorted(before.keys() & after.keys()):
        if before[key] != after[key]:
            diff["changed"][key] = changed(before[key], after[key])
    return _kept(diff)


def _old_new(old, new):
    return [short(old), short(new)]


def _items_or_values(old, new):
    """A list property as added/removed items; anything else as old -> new."""
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return _sets(old, new) or {"order": [short(old), short(new)]}
    return _old_new(old, new)


def _roles(old, new):
    diff = _sets(old, new)
    if isinstance(old, tuple) != isinstance(new, tuple):
        # Zope: a tuple of roles does not acquire, a list does.
        diff["acquire"] = [isinstance(old, list), isinstance(new, list)]
    return diff


def _workflows(before, after):
    diff = _sets(before["ids"], after["ids"])
    chains = _mapping(before["chains"], after["chains"], _old_new)
    if chains:
        diff["chains"] = chains
    return diff


def _by_name(before, after):
    diff = _mapping(before, after, lambda o, n: _mapping(o, n, _items_or_values))
    for key in ("added", "removed"):
        if key in diff:
            diff[key] = sorted(diff[key])
    return diff


COMPARE = {
    "registry": lambda before, after: _mapping(before, after, _old_new),
    "catalog": lambda before, after: _kept(
        {
            "indexes": _sets(before["indexes"], after["indexes"]),
            "metadata": _sets(before["metadata"], after["metadata"]),
            "writes": after["writes"] - before["writes"],
        }
    ),
    "types": _by_name,
    "workflows": _workflows,
    "actions": _by_name,
    "role_map": lambda before, after: {
        name: _roles(before.get(name, []), after.get(name, []))
        for name in sorted(before.keys() | after.keys())
        if before.get(name, []) != after.get(name, [])
    },
}


def compare(before, after):
    """``(changes, unknown)``: the categories that changed from picture
    ``before`` to ``after``, and the names of those that could not be read."""
    changes, unknown = {}, []
    for name, diff in COMPARE.items():
        if before.get(name) is None or after.get(name) is None:
            unknown.append(name)
            continue
        old, new = before[name][1], after[name][1]
        if old is new or old == new:
            continue
        found = diff(old, new)
        if found:
            changes[name] = found
    return changes, unknown


# -- words and size ------------------------------------------------------------


NOUNS = {
    "registry": "registry record",
    "indexes": "catalog index",
    "metadata": "catalog metadata column",
    "types": "content type",
    "workflows": "workflow",
    "chains": "workflow chain",
    "actions": "action",
    "role_map": "permission",
    "versions": "profile version",
}
VERBS = {"role_map": "with changed roles", "versions": "moved"}


def _words(count, noun, verb):
    plural = "" if count == 1 else "es" if noun.endswith("x") else "s"
    return f"{count} {noun}{plural} {verb}"


def _objects(verb, by_type):
    total = sum(entry["count"] for entry in by_type.values())
    kinds = ", ".join(f"{e['count']} {kind}" for kind, e in by_type.items())
    return f"{total} object{'' if total == 1 else 's'} {verb} ({kinds})"


def summary(changes):
    """One line that says what ``changes`` holds, for the text report."""
    parts = []
    for category, found in changes.items():
        if category in VERBS:
            parts.append(_words(len(found), NOUNS[category], VERBS[category]))
        elif category == "unknown":
            parts.append(f"not seen: {', '.join(found)}")
        elif category in NOUNS or category in ("catalog", "content"):
            for key, value in found.items():
                if key == "writes":
                    entries = "entry" if value == 1 else "entries"
                    parts.append(f"{value} catalog {entries} written")
                elif key in NOUNS:  # catalog indexes and metadata, chains
                    for verb, items in value.items():
                        parts.append(_words(len(items), NOUNS[key], verb))
                elif category in NOUNS:
                    parts.append(_words(len(value), NOUNS[category], key))
                else:  # objects, by portal type
                    parts.append(_objects(key, value))
    return "Changes: " + (", ".join(parts) if parts else "none seen") + "."


def bound(changes, limit=64 * 1024):
    """``changes`` cut to at most ``limit`` bytes of JSON: categories are
    dropped, largest first, until the rest fits; ``"cut"`` names them."""
    size = len(json.dumps(changes).encode())
    if size <= limit:
        return changes
    kept = dict(changes)
    sizes = {key: len(json.dumps(value).encode()) for key, value in kept.items()}
    cut = []
    for key in sorted(sizes, key=sizes.get, reverse=True):
        if size <= limit - 200:
            break
        del kept[key]
        size -= sizes[key]
        cut.append(key)
    message = f"Cut to stay under {limit} bytes."
    return {**kept, "cut": {"categories": sorted(cut), "message": message}}
