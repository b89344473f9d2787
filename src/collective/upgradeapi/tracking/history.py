"""The history of upgrade runs of a site: who ran what, when, with which result.

Runs are numbered from 1 per site and kept newest first, up to
:func:`.config.history_size` runs. Dry runs and failed runs are recorded too:
the history is written through a connection of its own (:mod:`.store`), not
in the run's transaction, which is doomed or aborted for those.

A run is recorded when its first step is about to start (``result:
"running"``) and completed when it ends. Results:

- ``running``: not finished yet (or its process died; see ``abandoned``);
- ``success``: every step ran (for a dry run: and was rolled back);
- ``failed``: a step raised; nothing was committed;
- ``error``: the run stopped on an unexpected error; nothing was committed;
- ``cancelled``: a Manager cancelled it; it stopped at a step boundary and
  what it had not committed was rolled back (``error.user`` says who);
- ``abandoned``: its process died or was stopped, or its lock was broken by
  a Manager, while it was recorded as running. It ends at its last sign of
  life (``error.heartbeat``), in the step it was in (``error.step``).

While a run goes on, the steps that ended are added to it (see
:func:`steps_ended`), so a run that is abandoned keeps what it had done (none
of it committed, unless it committed per profile or step).

What one entry costs is bounded (see :func:`finish`): the log lines of a run
are stored once (each step's lines, and the run's report as those lines and
the lines between steps), at most :data:`LOG_BUDGET` characters of them, cut
in the middle with a line that says how much was dropped (the full log is in
the run's answer and the server log); tracebacks and messages are bounded
too; steps and logs are stored compressed. :func:`runs` and :func:`get`
give every entry back in the same shape, whatever its storage.
"""

from collective.upgradeapi import config
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

import json
import zlib


RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
ERROR = "error"
ABANDONED = "abandoned"
CANCELLED = "cancelled"

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
#: ``format`` of entries whose steps and logs are stored in ``details``.
COMPACT = 2


def start(records, user, dry_run, selection, steps_total):
    """Record a run that starts now; return its id.

    :param records: the site's :class:`.store.Records` (in a transaction).
    """
    run_id = records.new_run_id()
    records.runs[run_id] = PersistentMapping(
        {
            "id": run_id,
            "user": user,
            "started": now(),
            "finished": None,
            "dry_run": dry_run,
            "selection": selection,
            "result": RUNNING,
            "committed": False,
            "steps_total": steps_total,
            "profiles": [],
            "steps": [],
            "error": None,
            "report": "",
            "transaction": None,
        }
    )
    _trim(records)
    return run_id


def finish(records, run_id, result, **data):
    """Complete the run ``run_id`` with ``result`` and the given keys.

    Keys: ``profiles``, ``steps`` (as the engine's ``as_dict()`` gives them),
    ``error`` (``{"type", "message"}`` or ``None``), ``report``, ``committed``,
    ``transaction`` (the id of the committed transaction, hex).

    The entry is stored compact (see the module's documentation): its
    profiles, steps, their logs and the report in ``details``, the log lines
    once and at most :data:`LOG_BUDGET` characters of them.

    A run that is not recorded as running any more (abandoned meanwhile, by
    a Manager or a stopping process) is left as it is.
    """
    record = records.runs.get(run_id)
    if record is None or record["result"] != RUNNING:
        # Dropped from a full history meanwhile, or ended by someone else.
        return
    steps = data.pop("steps", None) or _recorded_steps(record)
    report = data.pop("report", None) or ""
    profiles = data.pop("profiles", None) or record.get("profiles") or []
    if data.get("error"):
        data["error"] = _bounded_error(data["error"])
    record.update({**data, "result": result, "finished": now()})
    for key in ("steps", "report", "profiles", "live"):
        record.pop(key, None)
    record["format"] = COMPACT
    record["details"] = pack(steps, report, profiles)


def steps_ended(records, run_id, steps):
    """Add ``steps`` (as the engine's ``as_dict()`` gives them) to a running run.

    They are stored as one new record of their own (a ``PersistentList``), so
    adding steps costs what they weigh, not what the run recorded before;
    each step keeps at most :data:`LIVE_LOG_BUDGET` characters of its log
    until the run ends.
    """
    record = records.runs.get(run_id) if run_id is not None else None
    if record is None or record["result"] != RUNNING or not steps:
        return
    chunk = PersistentList(
        {**step, "log": _cut_lines(step.get("log") or [], LIVE_LOG_BUDGET)}
        for step in steps
    )
    live = record.get("live")
    if live is None:
        live = record["live"] = PersistentList()
    live.append(chunk)


def step_ended(records, run_id, step):
    """Add one ``step`` to a running run (see :func:`steps_ended`)."""
    steps_ended(records, run_id, [step])


def _recorded_steps(record):
    """The steps recorded while the run went on."""
    steps = list(record.get("steps") or ())
    for chunk in record.get("live") or ():
        steps.extend(dict(step) for step in chunk)
    return steps


def abandon(
    records, run_id, message, error_type="LockBroken", step=None, last_seen=None
):
    """Mark a run that is still recorded as running as abandoned.

    :param error_type: ``error.type``: ``LockBroken`` (a Manager broke its
        lock), ``ProcessGone`` (its process died) or ``Stopped`` (its
        process was stopped).
    :param step: ``{"id", "profile", "title"}`` of the step it was in.
    :param last_seen: its last sign of life (epoch seconds), when it ends;
        now if omitted.
    """
    record = records.runs.get(run_id) if run_id is not None else None
    if record is None or record["result"] != RUNNING:
        return
    seen = max(record["started"], last_seen if last_seen is not None else now())
    record.update(
        {
            "result": ABANDONED,
            "finished": seen,
            "error": {
                "type": error_type,
                "message": message,
                "step": step,
                "heartbeat": iso(seen),
            },
        }
    )


def _trim(records):
    keep = config.history_size()
    ids = list(records.runs.keys())
    for run_id in ids[: max(0, len(ids) - keep)]:
        del records.runs[run_id]


def runs(records):
    """Every recorded run, newest first, as plain dicts."""
    if records is None:
        return []
    return [plain(records.runs[key]) for key in reversed(list(records.runs.keys()))]


def get(records, run_id):
    """The run ``run_id`` as a plain dict, or ``None``."""
    if records is None:
        return None
    record = records.runs.get(run_id)
    return plain(record) if record is not None else None


def last_finished(records):
    """The newest run that is not running any more, or ``None``."""
    if records is None:
        return None
    for key in reversed(list(records.runs.keys())):
        record = records.runs[key]
        if record["result"] != RUNNING:
            return plain(record)
    return None


def plain(record):
    """A stored run as a plain dict with every documented key: ``steps``
    (each with its ``log``) and ``report`` whatever the storage."""
    data = dict(record)
    details = data.pop("details", None)
    data.pop("format", None)
    data.pop("live", None)
    if details is not None:
        data["steps"], data["report"], data["profiles"] = unpack(details)
    else:
        data["steps"] = _recorded_steps(record)
        data.setdefault("report", "")
    return data


# -- compact storage ------------------------------------------------------


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
            step["error"] = _bounded_error(step["error"])
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
            logs[index] = _cut_lines(logs[index], share)
        else:
            outline[index] = _block(_cut_lines(outline[index].splitlines(), share))


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


def _cut_lines(lines, budget):
    """``lines`` if they fit in ``budget`` characters; else their first and
    last lines, and a line in between that says what was dropped (only that
    line when the budget is too small for more)."""
    size = sum(len(line) + 1 for line in lines)
    if size <= budget:
        return list(lines)
    if budget < SMALLEST_CUT:
        marker = f"[... {len(lines)} log lines ({size} characters) dropped]"
        return [marker] if len(marker) < size else list(lines)
    half = budget // 2
    head = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > half:
            break
        head.append(line)
        used += len(line) + 1
    tail = []
    used = 0
    for line in reversed(lines[len(head) :]):
        if used + len(line) + 1 > half:
            break
        tail.append(line)
        used += len(line) + 1
    tail.reverse()
    dropped = lines[len(head) : len(lines) - len(tail)]
    if not head and not tail:
        # One line longer than half the budget: keep its start and end.
        first = _cut_text(dropped[0], half)
        return [first, _marker(dropped[1:])] if len(dropped) > 1 else [first]
    return [*head, _marker(dropped), *tail]


def _marker(dropped, steps=None):
    characters = sum(len(line) + 1 for line in dropped)
    where = f" of {steps} steps" if steps else ""
    return (
        f"[... {len(dropped)} log lines ({characters} characters){where} dropped "
        "from the history; the full log is in the run's answer and the server "
        "log]"
    )


def _cut_text(text, budget):
    """``text``, or its start and end with what was dropped in between."""
    if len(text) <= budget:
        return text
    half = max(budget // 2, 1)
    dropped = len(text) - 2 * half
    return f"{text[:half]}[... {dropped} characters dropped ...]{text[-half:]}"


def _bounded_error(error):
    """``error`` with its ``message`` and ``traceback`` bounded."""
    error = dict(error)
    if isinstance(error.get("message"), str):
        error["message"] = _cut_text(error["message"], MESSAGE_BUDGET)
    if isinstance(error.get("traceback"), str):
        error["traceback"] = _cut_text(error["traceback"], TRACEBACK_BUDGET)
    return error


def _duration(data):
    if data["finished"] is None:
        return None
    return round(data["finished"] - data["started"], 6)


def summary(data, url):
    """A run as the history listing shows it.

    :param url: the run's URL, for ``@id``.
    """
    return {
        "@id": url,
        "id": data["id"],
        "user": data["user"],
        "started": iso(data["started"]),
        "finished": iso(data["finished"]),
        "duration": _duration(data),
        "dry_run": data["dry_run"],
        "result": data["result"],
        "committed": data["committed"],
        "selection": data["selection"],
        "profiles": data["profiles"],
        "steps": [
            {
                "id": step["id"],
                "profile": step["profile"],
                "title": step["title"],
                "status": step["status"],
            }
            for step in data["steps"]
        ],
        "error": data["error"],
    }


def full(data, url):
    """A run with everything recorded: steps with logs and errors, report."""
    return {
        **summary(data, url),
        "steps": data["steps"],
        "steps_total": data["steps_total"],
        "report": data["report"],
        "transaction": data.get("transaction"),
    }
