"""How the run state is stored: plain persistent data, entries compact.

The site's annotation :data:`KEY` holds ``lock``, ``beat``, ``progress``
(each ``{"value": ...}``, a record of its own) and ``runs`` (an ``OOBTree``:
a new run rewrites a bucket of at most 30). An entry keeps all but ``result``
and ``committed`` packed (:func:`packed`, :func:`plain`): once it ended, its
steps and report too, their log lines once, within :data:`LOG_BUDGET`."""

from BTrees.OOBTree import OOBTree
from collective.upgradeapi.engine import changeset
from collective.upgradeapi.engine import logcapture
from collective.upgradeapi.engine import results
from itertools import accumulate
from persistent.mapping import PersistentMapping

import datetime
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
#: Most bytes of a run's change report its entry keeps, and as much again
#: for its steps' reports (see :func:`.engine.changeset.bound`).
CHANGES_BUDGET = 32 * 1024
#: Most characters of a traceback, and of an error message, an entry keeps.
TRACEBACK_BUDGET, MESSAGE_BUDGET = 8 * 1024, 2 * 1024
#: Below this many characters, a cut log keeps only the line that says so.
SMALLEST_CUT = 256
#: A new history entry (see :meth:`.state.RunState.start`).
ENTRY = {
    "finished": None,
    "result": "running",
    "committed": False,
    "error": None,
    "transaction": None,
}
#: The keys of a stored entry that are not the run's own.
INSIDE = ("details", "live", "committed_steps", "format")
#: What entries share, for zlib to refer to: never change it (entries need it).
COMMON = (
    b'"INFO Products.GenericSetup.tool: Importing profile profile-:default with depende'
    b'ncy strategy ignore.","INFO Products.GenericSetup.tool: Applying main profile pro'
    b'file-","INFO GenericSetup.rolemap: Role / permission map imported.",'
    b'{"finished":null,"error":null,"transaction":null,"id":1,"user":"","started":1,'
    b'"dry_run":false,"selection":{"profiles":null,"steps":null,"commit":"run",'
    b'"mark_done":false},"steps_total":1,"writes_held":{"mode":"never","holding":false,'
    b'"seconds":0.0,"units":[]},"cancel_requested":null,"profiles":[{"id":":default",'
    b'"versions":{"before":"","after":null,"fs":""}}],"logs":[["INFO collective.upgrade'
    b"api: Ran upgrade step '' (profile Products.CMFPlone:plone).\"]],"
    b'"steps":[{"id":"","profile":"Products.CMFPlone:plone","title":"","source":"",'
    b'"dest":"","status":"done","committed":false,"duration":0.0,"changes":{}}'
)
DROPPED = (
    "[... {lines} log lines ({size} characters){where} dropped from the "
    "history; the server's event log has every line]"
)


#: The current time, as seconds since the epoch.
now = time.time


def iso(timestamp):
    """``timestamp`` (seconds since the epoch) as ISO 8601 in UTC, or ``None``."""
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


def new_data():
    slots = {slot: PersistentMapping({"value": None}) for slot in SLOTS}
    return PersistentMapping({**slots, "runs": OOBTree()})


# -- one history entry ---------------------------------------------------------


def plain(record):
    """A stored run as a plain dict with every documented key: ``steps``
    (each with its ``log``) and ``report`` whatever the storage."""
    data = {key: value for key, value in record.items() if key not in INSIDE}
    if "details" in record:  # what was written plain since wins
        data = {**data, **unpack(record["details"]), **data}
    if "format" not in record:  # not finished: steps as they ended
        data.update(steps=recorded_steps(record, data), report=data.get("report", ""))
    return data


def recorded_steps(record, entry):
    """The steps recorded while the run went on, a step run again (its unit
    retried) once, as it ended last; each says whether it was committed (by
    its unit's commit, or the ``entry``'s one commit)."""
    steps = {}
    chunks = [record.get("steps") or (), *(record.get("live") or ())]
    for step in (step for chunk in chunks for step in chunk):
        steps.pop((step["profile"], step["id"]), None)
        steps[step["profile"], step["id"]] = dict(step)
    units = {tuple(step) for step in record.get("committed_steps") or ()}
    selection = entry.get("selection") or {}
    whole = entry.get("committed") and selection.get("commit") == "run"
    for key, step in steps.items():
        ran = step["status"] in (results.DONE, results.MARKED)
        step["committed"] = ran and (whole or key in units)
    return list(steps.values())


def result_entry(result, error):
    """The entry's keys for the engine's ``result`` (or ``None``) and the
    ``error`` the run stopped on; the change reports bounded."""
    if result is None:
        return {"error": error}
    steps = [step.as_dict() for step in result.steps]
    data = {"error": error, "steps": steps, "report": result.report}
    if result.changes is not None:
        # The run's change report, and a share of the budget per step.
        data["changes"] = changeset.bound(result.changes, CHANGES_BUDGET)
        share = max(1024, CHANGES_BUDGET // max(len(steps), 1))
        for step, ran in zip(steps, result.steps, strict=True):
            step["changes"] = changeset.bound(ran.changes or {}, share)
    data["profiles"] = [profile.as_dict() for profile in result.profiles]
    data.update(committed=result.committed, transaction=result.transaction_id)
    failed = result.failed_step
    if error is None and failed is not None:
        error = {k: failed.error[k] for k in ("type", "message")}
        data["error"] = {**error, "step": failed.task.ref()}
    return data


def complete(record, result, data):
    """Complete ``record`` with its ``result`` and ``data``, compact: what
    ``data`` lacks of steps, report and profiles is taken as recorded."""
    entry = {"profiles": [], **plain(record)}
    for key in ("steps", "report", "profiles"):
        entry[key] = data.pop(key, None) or entry[key]
    entry.update(data, result=result, finished=time.time())
    record.clear()
    record.update(packed(entry), format=3)


def packed(entry):
    """A plain ``entry`` packed, its ``result`` and ``committed`` kept readable."""
    outside = {key: entry.pop(key) for key in ("result", "committed")}
    return {**outside, "details": pack(**entry)}


def pack(steps=(), report="", profiles=(), budget=LOG_BUDGET, **entry):
    """``steps``, ``report``, ``profiles`` and the ``entry``'s other keys as
    stored (see :func:`_fit`).

    The report is kept as an outline: the text between steps' logs, and the
    index of each step whose log comes next in it as one block.
    """
    logs = [list(step.get("log") or ()) for step in steps]
    stored = [{key: v for key, v in step.items() if key != "log"} for step in steps]
    for item in (entry, *stored):
        if item.get("error"):
            item["error"] = bounded_error(item["error"])
    outline = _outline(report, logs)
    _fit(outline, logs, budget)
    document = {**entry, "steps": stored, "logs": logs, "outline": outline}
    document["profiles"] = list(profiles)
    packer = zlib.compressobj(9, zdict=COMMON)
    text = json.dumps(document, separators=(",", ":")).encode()
    return packer.compress(text) + packer.flush()


def unpack(details):
    """The keys :func:`pack` stored: ``steps`` (each with its ``log``),
    ``report``, ``profiles`` and the entry's others."""
    document = json.loads(zlib.decompressobj(zdict=COMMON).decompress(details))
    logs = document.pop("logs")
    steps = zip(document["steps"], logs, strict=True)
    document["steps"] = [{**step, "log": log} for step, log in steps]
    document["report"] = "".join(
        part if isinstance(part, str) else _block(logs[part])
        for part in document.pop("outline")
    )
    return document


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
    """Cut the log text of ``outline`` and ``logs`` (in place) to ``budget``:
    each piece (a step's log, a text between steps) keeps its fair share, its
    first and last lines (:func:`cut_lines`); with too many pieces for shares
    of :data:`SMALLEST_CUT` characters, the whole run's (:func:`_fit_ends`).
    """
    pieces = [("log", i, len(_block(lines))) for i, lines in enumerate(logs)]
    pieces += [("text", i, len(p)) for i, p in enumerate(outline) if isinstance(p, str)]
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
    sizes = [len(line) + 1 for _, line in order]
    head = sum(1 for used in accumulate(sizes) if used <= budget // 2)
    tail = sum(1 for used in accumulate(reversed(sizes)) if used <= budget // 2)
    end = len(order) - tail
    dropped = order[head:end]
    steps = len({piece for piece, _ in dropped if piece[0] == "log"})
    size = sum(len(line) + 1 for _, line in dropped)
    where = f" of {steps} steps" if steps else ""
    marker = DROPPED.format(lines=len(dropped), size=size, where=where)
    kept_lines = {}
    for at, (piece, line) in enumerate(order):
        if not head < at < end:  # kept, or the first dropped: the marker
            kept_lines.setdefault(piece, []).append(marker if at == head else line)
    for position, part in enumerate(outline):
        if isinstance(part, str):
            outline[position] = _block(kept_lines.get(("text", position), []))
    for index in range(len(logs)):
        logs[index] = kept_lines.get(("log", index), [])


def _report_order(outline, logs):
    """``[(piece, line)]`` in the order of the report, then steps not in it."""
    outlined = {part for part in outline if not isinstance(part, str)}
    order, rest = [], sorted(set(range(len(logs))) - outlined)
    for position, part in enumerate([*outline, *rest]):
        text = isinstance(part, str)
        piece = ("text", position) if text else ("log", part)
        order += [(piece, line) for line in (part.splitlines() if text else logs[part])]
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
    kept = logcapture.Bounded(budget, DROPPED.replace("{where}", ""))
    for line in lines:
        kept.add(line)
    return kept.lines()


def bounded_error(error):
    """``error`` with its ``message`` and ``traceback`` bounded."""
    error = dict(error)
    for key, budget in (("message", MESSAGE_BUDGET), ("traceback", TRACEBACK_BUDGET)):
        if isinstance(error.get(key), str):
            error[key] = logcapture.shortened(error[key], budget)
    return error
