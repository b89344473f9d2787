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
the lines between steps), at most :data:`.packing.LOG_BUDGET` characters of them, cut
in the middle with a line that says how much was dropped (the server's event
log has every line); tracebacks and messages are bounded
too; steps and logs are stored compressed. :func:`runs` and :func:`get`
give every entry back in the same shape, whatever its storage.
"""

from collective.upgradeapi import config
from collective.upgradeapi.engine.results import DONE
from collective.upgradeapi.engine.results import MARKED
from collective.upgradeapi.tracking.packing import bounded_error
from collective.upgradeapi.tracking.packing import cut_lines
from collective.upgradeapi.tracking.packing import LIVE_LOG_BUDGET
from collective.upgradeapi.tracking.packing import pack
from collective.upgradeapi.tracking.packing import unpack
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping


RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
ERROR = "error"
ABANDONED = "abandoned"
CANCELLED = "cancelled"

#: ``format`` of entries whose steps and logs are stored in ``details``.
COMPACT = 2


def is_running(records, run_id):
    """Whether ``run_id`` is recorded as running: only such a run may change."""
    record = records.runs.get(run_id) if run_id is not None else None
    return record is not None and record["result"] == RUNNING


def start(records, user, dry_run, selection, steps_total, profiles=()):
    """Record a run that starts now; return its id.

    :param records: the site's :class:`.state.RunState` (in a transaction).
    :param profiles: ``{"id", "versions": {"before", "after", "fs"}}`` of the
        profiles the run is planned to touch, ``after`` unknown (``None``).
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
            "profiles": [dict(p) for p in profiles],
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
    once and at most :data:`.packing.LOG_BUDGET` characters of them.

    A run that is not recorded as running any more (abandoned meanwhile, by
    a Manager or a stopping process) is left as it is.
    """
    if not is_running(records, run_id):
        return  # dropped from a full history meanwhile, or ended by someone else
    record = records.runs[run_id]
    steps = data.pop("steps", None)
    report = data.pop("report", None) or ""
    profiles = data.pop("profiles", None) or record.get("profiles") or []
    if data.get("error"):
        data["error"] = bounded_error(data["error"])
    record.update({**data, "result": result, "finished": now()})
    steps = steps or _recorded_steps(record)
    for key in ("steps", "report", "profiles", "live", "committed_steps"):
        record.pop(key, None)
    record["format"] = COMPACT
    record["details"] = pack(steps, report, profiles)


def steps_ended(records, run_id, steps):
    """Add ``steps`` (as the engine's ``as_dict()`` gives them) to a running run.

    They are stored as one new record of their own (a ``PersistentList``), so
    adding steps costs what they weigh, not what the run recorded before;
    each step keeps at most :data:`.packing.LIVE_LOG_BUDGET` characters of its log
    until the run ends.
    """
    if not steps or not is_running(records, run_id):
        return
    record = records.runs[run_id]
    chunk = PersistentList(
        {**step, "log": cut_lines(step.get("log") or [], LIVE_LOG_BUDGET)}
        for step in steps
    )
    live = record.get("live")
    if live is None:
        live = record["live"] = PersistentList()
    live.append(chunk)


def steps_committed(records, run_id, steps):
    """Note that the unit of ``steps`` (``[profile, id]``) of a running run
    was committed: what they did is durable."""
    if steps and is_running(records, run_id):
        record = records.runs[run_id]
        committed = record.get("committed_steps")
        if committed is None:
            committed = record["committed_steps"] = PersistentList()
        committed.extend(list(step) for step in steps)


def _recorded_steps(record):
    """The steps recorded while the run went on; a step that ran again (its
    unit retried after a write conflict) once, as it ended last; each says
    whether its unit was committed."""
    steps = {}
    for step in record.get("steps") or ():
        steps[step["profile"], step["id"]] = dict(step)
    for chunk in record.get("live") or ():
        for step in chunk:
            steps.pop((step["profile"], step["id"]), None)
            steps[step["profile"], step["id"]] = dict(step)
    # A unit's commit is noted after it (a run's one commit is not: then the
    # run's "committed", from its profiles' versions, says it).
    units = {tuple(step) for step in record.get("committed_steps") or ()}
    selection = record.get("selection") or {}
    whole = record.get("committed") and selection.get("commit") == "run"
    for key, step in steps.items():
        ran = step["status"] in (DONE, MARKED)
        step["committed"] = ran and (whole or key in units)
    return list(steps.values())


def abandon(
    records,
    run_id,
    message,
    error_type="LockBroken",
    step=None,
    last_seen=None,
    versions=None,
):
    """Mark a run that is still recorded as running as abandoned.

    :param error_type: ``error.type``: ``LockBroken`` (a Manager broke its
        lock), ``ProcessGone`` (its process died) or ``Stopped`` (its
        process was stopped).
    :param step: ``{"id", "profile", "title"}`` of the step it was in.
    :param last_seen: its last sign of life (epoch seconds), when it ends;
        now if omitted.
    :param versions: ``versions(profile_id)``, a profile's recorded version
        now: what the run had committed (per profile or step) is recorded.
    """
    if not is_running(records, run_id):
        return
    record = records.runs[run_id]
    if versions is not None and record.get("profiles"):
        durable(record, versions)
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


def durable(record, versions):
    """Record in a run's entry where its profiles are now, and whether
    anything of it was committed (a profile whose version moved)."""
    profiles = []
    for profile in record["profiles"]:
        after = versions(profile["id"])
        profiles.append(
            {**profile, "versions": {**profile["versions"], "after": after}}
        )
    record["profiles"] = profiles
    record["committed"] = any(
        p["versions"]["after"] != p["versions"]["before"] for p in profiles
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
    data.pop("committed_steps", None)
    if details is not None:
        data["steps"], data["report"], data["profiles"] = unpack(details)
    else:
        data["steps"] = _recorded_steps(record)
        data.setdefault("report", "")
    return data


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
                "committed": step.get("committed", False),
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
        "cancel_requested": data.get("cancel_requested"),
        "writes_held": data.get("writes_held"),
        # The change report, when the run recorded one.
        **({"changes": data["changes"]} if data.get("changes") is not None else {}),
    }
