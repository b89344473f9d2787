"""A run's change report as text, grouped by step: ``+`` added, ``~`` changed,
``-`` removed, ``?`` what the server could not see.

:func:`render` takes the steps of a ``POST @upgrade`` answer (or of a history
entry), each with its ``changes``, and prints them as ``terraform plan`` prints
a plan; ANSI colours only when asked.
"""

import json


SIGNS = {"added": "+", "indexed": "+", "removed": "-", "unindexed": "-"}
COLOURS = {"+": "32", "~": "33", "-": "31", "?": "35", "!": "31"}
#: How each category is named in a line, and the name of its parts.
NAMES = {"types": "type", "workflows": "workflow", "actions": "action"}
NAMES.update(
    indexes="catalog index", metadata="catalog column", chains="workflow chain"
)


def _value(value):
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _arrow(pair):
    return f"{_value(pair[0])} -> {_value(pair[1])}"


def _detail(diff):
    """``{"added", "removed", "changed", ...}`` as ``+item, -item, key: a -> b``."""
    parts = []
    for key, value in diff.items():
        if key in ("added", "removed") and isinstance(value, list):
            parts.extend(f"{SIGNS[key]}{_value(item)}" for item in value)
        elif isinstance(value, list) and len(value) == 2:
            parts.append(f"{key}: {_arrow(value)}")
        elif isinstance(value, dict):
            inner = _detail(value)
            parts.append(inner if key == "changed" else f"{key} {inner}")
        else:
            parts.append(f"{key}: {_value(value)}")
    return ", ".join(parts)


def _steps(value):
    return "all (a full import)" if value == "all" else ", ".join(value)


def _counted(verb, by_type):
    for portal_type, entry in by_type.items():
        paths = entry.get("paths", [])
        more = entry["count"] - len(paths)
        shown = ", ".join(paths) + (f" and {more} more" if more > 0 else "")
        yield SIGNS.get(verb, "~"), f"{entry['count']} {portal_type} {verb}: {shown}"


def _part(name, key, value):
    """Lines of ``value`` under ``key`` (added, removed, changed) of ``name``."""
    sign = SIGNS.get(key, "~")
    if isinstance(value, list):
        for item in value:
            yield sign, f"{name} {_value(item)}"
        return
    for item, diff in value.items():
        if key == "changed" and isinstance(diff, list):
            yield sign, f"{name} {item}: {_arrow(diff)}"
        elif key == "changed":
            yield sign, f"{name} {item}: {_detail(diff)}"
        else:
            yield sign, f"{name} {item} = {_value(diff)}"


def _special(category, data):
    """The lines of a category with a shape of its own, or ``None``."""
    if category == "unknown":
        return [("?", f"not seen: {', '.join(data)}")]
    if category == "approximate":
        return [("?", "counts approximate: an object may be counted twice")]
    if category == "cut":
        return [("!", f"cut: {', '.join(data.get('categories', []))}")]
    if category == "versions":
        return [("~", f"version {key}: {_arrow(value)}") for key, value in data.items()]
    if category == "import_steps":
        return [("~", f"import steps {key}: {_steps(v)}") for key, v in data.items()]
    if category == "role_map":
        return [("~", f"role map {key!r}: {_detail(v)}") for key, v in data.items()]
    return None


def lines(changes):
    """``(sign, text)`` for each change of one step's report."""
    for category, data in changes.items():
        special = _special(category, data)
        if special is not None:
            yield from special
            continue
        for key, value in data.items():
            if isinstance(value, int):
                yield "~", f"{category} {key}: {value}"
            elif key in ("indexed", "reindexed", "unindexed") or category == "content":
                yield from _counted(key, value)
            elif key in ("indexes", "metadata", "chains"):
                for verb, part in value.items():
                    yield from _part(NAMES[key], verb, part)
            else:
                yield from _part(NAMES.get(category, category), key, value)


def render(steps, color=False):
    """The report of each of ``steps`` (with ``title`` and ``changes``, as a
    run's answer or a history entry lists them); ANSI colours with ``color``."""
    out = []
    for step in steps:
        changes = step.get("changes")
        if changes is None:
            continue
        found = [(COLOURS[sign], f"  {sign} {text}") for sign, text in lines(changes)]
        for code, text in [
            ("1", step["title"]),
            *(found or [("0", "    (no change)")]),
        ]:
            out.append(f"\033[{code}m{text}\033[0m" if color else text)
    return "\n".join(out) + ("\n" if out else "")
