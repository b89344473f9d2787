"""A change report as plain data (:mod:`.changes` records it).

:func:`compare` turns two pictures of a site's configuration
(:mod:`.pictures`) into the report's categories (a part that could not be
read is "unknown", never "unchanged"); :func:`summary` says a report in one
line; :func:`bound` cuts it.
"""

from collective.upgradeapi.engine.profiles import UNKNOWN

import json


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


# -- comparing -----------------------------------------------------------------


def _kept(diff):
    return {key: value for key, value in diff.items() if value}


def _sets(before, after):
    """``{"added", "removed"}`` of two collections, sorted."""
    added = sorted(set(after) - set(before), key=str)
    return _kept({"added": added, "removed": sorted(set(before) - set(after), key=str)})


def _each(before, after, changed, keys=None, missing=None):
    """``{key: changed(old, new)}`` of the ``keys`` (by default every key of
    either dict, one missing in a dict: ``missing``) whose values differ."""
    keys = before.keys() | after.keys() if keys is None else keys
    return {
        key: changed(before.get(key, missing), after.get(key, missing))
        for key in sorted(keys)
        if before.get(key, missing) != after.get(key, missing)
    }


def _mapping(before, after, changed, shown=short):
    """Keys of two dicts added and removed (``{key: shown(value)}``, or the
    keys alone without ``shown``) and changed (as ``changed(old, new)``)."""

    def listed(keys, values):
        keys = sorted(keys)
        return {key: shown(values[key]) for key in keys} if shown else keys

    return _kept(
        {
            "added": listed(after.keys() - before.keys(), after),
            "removed": listed(before.keys() - after.keys(), before),
            "changed": _each(before, after, changed, before.keys() & after.keys()),
        }
    )


def _old_new(old, new):
    return [short(old), short(new)]


def _items_or_values(old, new):
    """A list property as added/removed items; anything else as old -> new."""
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return _sets(old, new) or {"order": _old_new(old, new)}
    return _old_new(old, new)


def _roles(old, new):
    diff = _sets(old, new)
    if isinstance(old, tuple) != isinstance(new, tuple):
        # Zope: a tuple of roles does not acquire, a list does.
        diff["acquire"] = [isinstance(old, list), isinstance(new, list)]
    return diff


def _by_name(before, after):
    return _mapping(before, after, lambda o, n: _mapping(o, n, _items_or_values), None)


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
    "workflows": lambda before, after: _kept(
        {
            **_sets(before["ids"], after["ids"]),
            "chains": _mapping(before["chains"], after["chains"], _old_new),
        }
    ),
    "actions": _by_name,
    "role_map": lambda before, after: _each(before, after, _roles, missing=[]),
    "versions": lambda before, after: _each(before, after, _old_new, missing=UNKNOWN),
}


def compare(before, after, written=None):
    """``(changes, unknown)``: the categories that changed from picture
    ``before`` to ``after``, and the names of those that could not be read;
    ``written``: the registry records written in between, when known."""
    changes, unknown = {}, []
    for name, diff in COMPARE.items():  # the parts of a picture
        if before.get(name) is None or after.get(name) is None:
            unknown.append(name)
            continue
        old, new = before[name][1], after[name][1]
        if name == "registry" and written is not None:  # the others are as they were
            old, new = (
                {k: part[k] for k in written if k in part} for part in (old, new)
            )
        if old is not new and old != new:
            changes[name] = diff(old, new)
    return _kept(changes), unknown


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
    return _words(total, "object", f"{verb} ({kinds})")


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
