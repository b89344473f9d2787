"""How the run state is stored: plain persistent data, entries compact.

Everything lives in the site, under one annotation, as plain persistent data
(``PersistentMapping`` and ``IOBTree``, holding dicts, strings and numbers):
no class of this package is ever stored, so a site opened without the package
has no broken object. :func:`remove` deletes it all. Layout::

    "lock"     -> PersistentMapping {"value": {...} or None}
    "beat"     -> PersistentMapping {"value": {...} or None}
    "progress" -> PersistentMapping {"value": {...} or None}
    "runs"     -> IOBTree {run id: PersistentMapping (one run)}
    "last_id"  -> int

Each slot and each run is a record of its own: concurrent writers of the same
slot get a ``ConflictError``, writers of different slots never do.

A finished run's steps, their logs, its report and its profiles are stored in
its ``details`` (:func:`pack`): compressed JSON, the log lines once (the
report as an outline of text and step references), at most
:data:`LOG_BUDGET` characters of them; a longer log keeps its first and last
lines, with a line in the middle saying how much was dropped (the server's
event log has every line). :func:`plain` gives every entry back in one shape.
"""

from BTrees.IOBTree import IOBTree
from collective.upgradeapi.engine.logcapture import Bounded
from collective.upgradeapi.engine.logcapture import shortened
from collective.upgradeapi.engine.results import DONE
from collective.upgradeapi.engine.results import MARKED
from datetime import datetime
from datetime import timezone
from persistent.mapping import PersistentMapping
from zope.annotation.interfaces import IAnnotations

import json
import time
import zlib


KEY = "collective.upgradeapi.state"
#: Annotations this package writes in a site, all removed by :func:`remove`.
KEYS = (KEY, "collective.upgradeapi.done", "collective.upgradeapi.audit")
SLOTS = ("lock", "beat", "progress")

#: Most characters of log lines one entry keeps (its steps' logs and the
#: lines of its report between them); the rest is dropped from the middle.
LOG_BUDGET = 32 * 1024
#: Most characters of one step's log kept while the run goes on.
LIVE_LOG_BUDGET = 4 * 1024
#: Most characters of a traceback, and of an error message, an entry keeps.
TRACEBACK_BUDGET = 8 * 1024
MESSAGE_BUDGET = 2 * 1024
#: Below this many characters, a cut log keeps only the line that says so.
SMALLEST_CUT = 256
#: A new history entry (see :meth:`.state.RunState.take`).
ENTRY = {
    "finished": None,
    "result": "running",
    "committed": False,
    "steps": [],
    "error": None,
    "report": "",
    "transaction": None,
}
DROPPED = (
    "[... {lines} log lines ({size} characters){where} dropped from the "
    "history; the server's event log has every line]"
)


def now():
    """The current time, as seconds since the epoch."""
    return time.time()


def iso(timestamp):
    """``timestamp`` (seconds since the epoch) as ISO 8601 in UTC, or ``None``."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="seconds")


def new_data():
    data = PersistentMapping(
        {slot: PersistentMapping({"value": None}) for slot in SLOTS}
    )
    data["runs"] = IOBTree()
    data["last_id"] = 0
    return data


def remove(site):
    """Delete everything this package stored in ``site`` (not committed);
    return the annotation keys that were removed."""
    annotations = IAnnotations(site)
    removed = [key for key in KEYS if key in annotations]
    for key in removed:
        del annotations[key]
    return removed


# -- one history entry ---------------------------------------------------------


def plain(record):
    """A stored run as a plain dict with every documented key: ``steps``
    (each with its ``log``) and ``report`` whatever the storage."""
    data = dict(record)
    for key in ("format", "live", "committed_steps"):
        data.pop(key, None)
    details = data.pop("details", None)
    if details is not None:
        data["steps"], data["report"], data["profiles"] = unpack(details)
    else:
        data["steps"] = recorded_steps(record)
        data.setdefault("report", "")
    return data


def recorded_steps(record):
    """The steps recorded while the run went on; a step that ran again (its
    unit retried after a write conflict) once, as it ended last; each says
    whether its unit was committed (noted after each unit's commit; a run's
    one commit is not: its ``committed`` says it)."""
    steps = {}
    chunks = [record.get("steps") or (), *(record.get("live") or ())]
    for step in (step for chunk in chunks for step in chunk):
        steps.pop((step["profile"], step["id"]), None)
        steps[step["profile"], step["id"]] = dict(step)
    units = {tuple(step) for step in record.get("committed_steps") or ()}
    selection = record.get("selection") or {}
    whole = record.get("committed") and selection.get("commit") == "run"
    for key, step in steps.items():
        ran = step["status"] in (DONE, MARKED)
        step["committed"] = ran and (whole or key in units)
    return list(steps.values())


def pack(steps, report, profiles=(), budget=LOG_BUDGET):
    """``steps``, ``report`` and ``profiles`` as stored: compressed JSON,
    log lines once, at most ``budget`` characters of them (see :func:`_fit`).

    The report is kept as an outline: the text between steps' logs, and the
    index of the step whose log comes next. A step whose log is not found
    in the report as one block (it keeps its own) is not in the outline.
    """
    logs, stored = [], []
    for step in steps:
        step = dict(step)
        logs.append(list(step.pop("log", None) or ()))
        if step.get("error"):
            step["error"] = bounded_error(step["error"])
        stored.append(step)
    outline = _outline(report, logs)
    _fit(outline, logs, budget)
    document = {"steps": stored, "logs": logs, "outline": outline}
    document["profiles"] = list(profiles)
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 6)


def unpack(details):
    """``(steps, report, profiles)`` from what :func:`pack` stored."""
    document = json.loads(zlib.decompress(details))
    logs = document["logs"]
    steps = [{**s, "log": log} for s, log in zip(document["steps"], logs, strict=True)]
    report = "".join(
        part if isinstance(part, str) else _block(logs[part])
        for part in document["outline"]
    )
    return steps, report, document["profiles"]


def _block(lines):
    return "".join(f"{line}\n" for line in lines)


def _outline(report, logs):
    """The report as text between steps' logs, and step indexes."""
    outline = []
    position = 0
    for index, lines in enumerate(logs):
        block = _block(lines)
        found = report.find(block, position) if lines else -1
        if found < 0:
            continue
        if found > position:
            outline.append(report[position:found])
        outline.append(index)
        position = found + len(block)
    if position < len(report):
        outline.append(report[position:])
    return outline


def _fit(outline, logs, budget):
    """Cut the log text of ``outline`` and ``logs`` (in place) to ``budget``.

    Each piece (a step's log, a text between steps) gets a fair share: a
    piece smaller than its share is kept whole and leaves the rest to the
    others; a larger one keeps its first and last lines, with a line in
    between that says how much was dropped. When there are too many pieces
    for shares of :data:`SMALLEST_CUT` characters, the run's first and last
    lines are kept instead, with one such line in between.
    """
    pieces = [
        ("log", i, sum(len(line) + 1 for line in ls)) for i, ls in enumerate(logs)
    ]
    pieces += [
        ("text", i, len(part))
        for i, part in enumerate(outline)
        if isinstance(part, str)
    ]
    if sum(size for _, _, size in pieces) <= budget:
        return
    cuts = []
    left, count = budget, len(pieces)
    for kind, index, size in sorted(pieces, key=lambda piece: piece[2]):
        share = left // count
        count -= 1
        if size <= share:
            left -= size
        elif share < SMALLEST_CUT:
            return _fit_ends(outline, logs, budget)
        else:
            left -= share
            cuts.append((kind, index, share))
    for kind, index, share in cuts:
        if kind == "log":
            logs[index] = cut_lines(logs[index], share)
        else:
            outline[index] = _block(cut_lines(outline[index].splitlines(), share))


def _fit_ends(outline, logs, budget):
    """Keep the first and last lines of the whole run within ``budget``:
    from each end, up to half of it."""
    order = _report_order(outline, logs)
    keep = [False] * len(order)
    for indexes in (range(len(order)), range(len(order) - 1, -1, -1)):
        used = 0
        for at in indexes:
            used += len(order[at][1]) + 1
            if used > budget // 2:
                break
            keep[at] = True
    dropped = [order[at] for at, kept in enumerate(keep) if not kept]
    steps = len({piece for piece, _ in dropped if piece[0] == "log"})
    size = sum(len(line) + 1 for _, line in dropped)
    where = f" of {steps} steps" if steps else ""
    marker = DROPPED.format(lines=len(dropped), size=size, where=where)
    first = keep.index(False)
    kept_lines = {}
    for at, (piece, line) in enumerate(order):
        if keep[at] or at == first:
            kept_lines.setdefault(piece, []).append(line if keep[at] else marker)
    for position, part in enumerate(outline):
        if isinstance(part, str):
            outline[position] = _block(kept_lines.get(("text", position), []))
    for index in range(len(logs)):
        logs[index] = kept_lines.get(("log", index), [])


def _report_order(outline, logs):
    """``[(piece, line)]`` in the order of the report, then steps not in it."""
    order = []
    for position, part in enumerate(outline):
        text = isinstance(part, str)
        piece = ("text", position) if text else ("log", part)
        order += [(piece, line) for line in (part.splitlines() if text else logs[part])]
    outlined = {part for part in outline if not isinstance(part, str)}
    for index in (i for i in range(len(logs)) if i not in outlined):
        order += [(("log", index), line) for line in logs[index]]
    return order


def cut_lines(lines, budget):
    """``lines`` if they fit in ``budget`` characters; else their first and
    last lines (:class:`.logcapture.Bounded`) and a line in between that says
    what was dropped (only that line when the budget is too small for more)."""
    size = sum(len(line) + 1 for line in lines)
    if size <= budget:
        return list(lines)
    if budget < SMALLEST_CUT:
        marker = DROPPED.format(lines=len(lines), size=size, where="")
        return [marker] if len(marker) < size else list(lines)
    kept = Bounded(budget, DROPPED.replace("{where}", ""))
    for line in lines:
        kept.add(line)
    return kept.lines()


def bounded_error(error):
    """``error`` with its ``message`` and ``traceback`` bounded."""
    error = dict(error)
    for key, budget in (("message", MESSAGE_BUDGET), ("traceback", TRACEBACK_BUDGET)):
        if isinstance(error.get(key), str):
            error[key] = shortened(error[key], budget)
    return error
