"""How a history entry is stored: log lines once, compressed, bounded.

A run's report and its steps' logs hold the same lines; they are stored once
(the report as an outline of text and step references), as compressed JSON,
at most :data:`LOG_BUDGET` characters of them: a longer log keeps its first
and last lines, with a line in the middle saying how much was dropped. The
server's event log has every line.
"""

from collective.upgradeapi.engine.logcapture import Bounded
from collective.upgradeapi.engine.logcapture import shortened

import json
import zlib


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
#: The line said in place of dropped log lines.
DROPPED = (
    "[... {lines} log lines ({size} characters){where} dropped from the "
    "history; the server's event log has every line]"
)


def pack(steps, report, profiles=(), budget=LOG_BUDGET):
    """``steps``, ``report`` and ``profiles`` as stored: compressed JSON,
    log lines once.

    The report is kept as an outline: the text between steps' logs, and the
    index of the step whose log comes next. A step whose log is not found
    in the report as one block (it keeps its own) is not in the outline.
    At most ``budget`` characters of log text are kept (see :func:`_fit`).
    """
    logs = []
    stored = []
    for step in steps:
        step = dict(step)
        logs.append(list(step.pop("log", None) or ()))
        if step.get("error"):
            step["error"] = bounded_error(step["error"])
        stored.append(step)
    outline = _outline(report, logs)
    _fit(outline, logs, budget)
    document = {
        "steps": stored,
        "logs": logs,
        "outline": outline,
        "profiles": list(profiles),
    }
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 6)


def unpack(details):
    """``(steps, report, profiles)`` from what :func:`pack` stored."""
    document = json.loads(zlib.decompress(details))
    logs = document["logs"]
    steps = [
        {**step, "log": log} for step, log in zip(document["steps"], logs, strict=True)
    ]
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
        if not lines:
            continue
        block = _block(lines)
        found = report.find(block, position)
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
        ("log", index, sum(len(line) + 1 for line in lines))
        for index, lines in enumerate(logs)
    ]
    pieces += [
        ("text", index, len(part))
        for index, part in enumerate(outline)
        if isinstance(part, str)
    ]
    if sum(size for _, _, size in pieces) <= budget:
        return
    cuts = []
    left = budget
    count = len(pieces)
    for kind, index, size in sorted(pieces, key=lambda piece: piece[2]):
        share = left // count
        count -= 1
        if size <= share:
            left -= size
        elif share < SMALLEST_CUT:
            _fit_ends(outline, logs, budget)
            return
        else:
            left -= share
            cuts.append((kind, index, share))
    for kind, index, share in cuts:
        if kind == "log":
            logs[index] = cut_lines(logs[index], share)
        else:
            outline[index] = _block(cut_lines(outline[index].splitlines(), share))


def _fit_ends(outline, logs, budget):
    """Keep the first and last lines of the whole run within ``budget``."""
    order = _report_order(outline, logs)
    keep = _kept_ends(order, budget)
    dropped = [order[at] for at, kept in enumerate(keep) if not kept]
    steps = len({piece for piece, _ in dropped if piece[0] == "log"})
    marker = _marker([line for _, line in dropped], steps)
    first = keep.index(False)
    kept_lines = {}
    for at, (piece, line) in enumerate(order):
        if keep[at]:
            kept_lines.setdefault(piece, []).append(line)
        elif at == first:
            kept_lines.setdefault(piece, []).append(marker)
    for position, part in enumerate(outline):
        if isinstance(part, str):
            outline[position] = _block(kept_lines.get(("text", position), []))
    for index in range(len(logs)):
        logs[index] = kept_lines.get(("log", index), [])


def _report_order(outline, logs):
    """``[(piece, line)]`` in the order of the report, then steps not in it."""
    order = []
    for position, part in enumerate(outline):
        if isinstance(part, str):
            order += [(("text", position), line) for line in part.splitlines()]
        else:
            order += [(("log", part), line) for line in logs[part]]
    outlined = {part for part in outline if not isinstance(part, str)}
    for index, lines in enumerate(logs):
        if index not in outlined:
            order += [(("log", index), line) for line in lines]
    return order


def _kept_ends(order, budget):
    """Which lines to keep: from each end, up to half the budget."""
    keep = [False] * len(order)
    for indexes in (range(len(order)), range(len(order) - 1, -1, -1)):
        used = 0
        for at in indexes:
            used += len(order[at][1]) + 1
            if used > budget // 2:
                break
            keep[at] = True
    return keep


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


def _marker(dropped, steps=None):
    characters = sum(len(line) + 1 for line in dropped)
    where = f" of {steps} steps" if steps else ""
    return DROPPED.format(lines=len(dropped), size=characters, where=where)


def bounded_error(error):
    """``error`` with its ``message`` and ``traceback`` bounded."""
    error = dict(error)
    if isinstance(error.get("message"), str):
        error["message"] = shortened(error["message"], MESSAGE_BUDGET)
    if isinstance(error.get("traceback"), str):
        error["traceback"] = shortened(error["traceback"], TRACEBACK_BUDGET)
    return error
