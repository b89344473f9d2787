"""Text output of the commands: tables and summaries, for people and CI logs."""


def _text(value, empty="-"):
    if value is None or value == "":
        return empty
    return str(value)


def table(rows, headers, indent="  "):
    """Lines of a plain table; the last column is not padded."""
    rows = [[_text(cell) for cell in row] for row in rows]
    widths = [
        max(len(str(cells[i])) for cells in [headers, *rows])
        for i in range(len(headers))
    ]
    lines = []
    for cells in [headers, *rows]:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        padded[-1] = cells[-1]
        lines.append((indent + "  ".join(padded)).rstrip())
    return lines


def versions(before, after):
    before, after = _text(before, "?"), _text(after, "?")
    return before if before == after else f"{before} -> {after}"


def pending_steps(profile):
    return [step for step in profile.get("steps", []) if not step.get("done")]


def profile_versions(profile):
    """``instance -> where a run ends``, and what metadata.xml says if it lags.

    A run ends at its last step's destination, which is past the version
    ``metadata.xml`` declares when the add-on's metadata lags its steps.
    """
    known = profile.get("versions", {})
    fs = known.get("fs")
    dests = [s.get("dest") for s in pending_steps(profile) if s.get("dest")]
    end = dests[-1] if dests and profile.get("metadata_lags") else fs
    text = versions(known.get("instance"), end)
    if profile.get("metadata_lags") and end != fs:
        text += f" (metadata.xml: {_text(fs)})"
    return text


def summary(info):
    """One line per profile with pending steps (``check``)."""
    lines = []
    for profile in info.get("profiles", []):
        pending = pending_steps(profile)
        if profile.get("downgraded"):
            state = "database is newer than the code"
        elif pending:
            state = f"{len(pending)} step{'s' if len(pending) != 1 else ''}"
        else:
            continue
        lines.append(
            [
                profile.get("id"),
                profile_versions(profile),
                state,
            ]
        )
    return table(lines, ["PROFILE", "VERSION", "PENDING"]) if lines else []


def plan(info):
    """The pending steps of each profile (``plan``)."""
    lines = []
    for profile in info.get("profiles", []):
        pending = pending_steps(profile)
        title = profile.get("title") or ""
        core = " (core)" if profile.get("core") else ""
        header = f"{profile.get('id')}{core}"
        if title and title != profile.get("id"):
            header += f": {title}"
        header += ", " + profile_versions(profile)
        if profile.get("downgraded"):
            header += (
                ": the database records a newer version than the code knows; "
                "it cannot be upgraded"
            )
        else:
            count = len(pending)
            header += f", {count} pending step{'s' if count != 1 else ''}"
        lines.append(header)
        rows = [
            [
                step.get("id"),
                versions(step.get("source"), step.get("dest")),
                "yes" if step.get("proposed") else "no",
                step.get("title"),
            ]
            for step in pending
        ]
        if rows:
            lines.extend(table(rows, ["STEP ID", "VERSIONS", "PROPOSED", "TITLE"]))
        lines.append("")
    return lines[:-1]


def _duration(seconds):
    if not isinstance(seconds, (int, float)):
        return "-"
    return f"{seconds:.2f}s"


def step_results(steps):
    """One row per step attempted (``run``)."""
    rows = [
        [
            step.get("status"),
            _duration(step.get("duration")),
            step.get("profile"),
            versions(step.get("source"), step.get("dest")),
            step.get("title"),
        ]
        for step in steps
    ]
    return table(rows, ["STATUS", "TIME", "PROFILE", "VERSIONS", "TITLE"])


def profile_results(profiles):
    rows = []
    for profile in profiles:
        found = profile.get("versions", {})
        rows.append(
            [
                profile.get("id"),
                versions(found.get("before"), found.get("after")),
                found.get("fs"),
            ]
        )
    return table(rows, ["PROFILE", "VERSION", "CODE"])


def step_name(status):
    """The step a status document says runs now: ``Title (profile)``."""
    current = status.get("current_step")
    if not isinstance(current, dict):
        return _text(current, "")
    name = current.get("title") or current.get("id") or ""
    return name + (f" ({current['profile']})" if current.get("profile") else "")


def progress(status):
    """One line for a status document of ``GET @upgrade/status``.

    ``[3/12] Title (profile)``: the step that runs now is the third of 12.
    """
    name = step_name(status)
    done, total = status.get("steps_done"), status.get("steps_total")
    if isinstance(done, int) and name:
        done += 1
        if isinstance(total, int):
            done = min(done, total)
    line = f"[{_text(done, '?')}/{_text(total, '?')}] {name}".rstrip()
    state = status.get("state")
    if state not in (None, "running"):
        line += f" ({state})"
    if status.get("stale"):
        line += " (no sign of life from the server for a while)"
    return line


def history_entries(document):
    """The list of runs in a ``GET @upgrade/history`` answer."""
    if isinstance(document, list):
        return document
    items = document.get("items")
    return [item for item in items if isinstance(item, dict)] if items else []


def selection(entry):
    """What a recorded run was asked to do, in words."""
    chosen = entry.get("selection") or {}
    if chosen.get("steps"):
        return f"steps {', '.join(chosen['steps'])}"
    profiles = chosen.get("profiles")
    if profiles == "all":
        return "all profiles"
    if profiles:
        return ", ".join(profiles)
    return "core upgrade"


def _kind(entry):
    dry_run = entry.get("dry_run")
    return "dry run" if dry_run else ("run" if dry_run is False else None)


def _count(entry):
    steps = entry.get("steps")
    if not isinstance(steps, list):
        return None
    done = sum(1 for step in steps if step.get("status") == "done")
    return f"{done}/{len(steps)}"


def run_error(entry):
    """One line for the error of a recorded run, or ``None``."""
    error = entry.get("error")
    if not isinstance(error, dict):
        return None
    where = ""
    step = error.get("step")
    if isinstance(step, dict):
        where = f" at step {step.get('title')!r} ({step.get('profile')})"
    return f"{error.get('type', 'Error')}{where}: {error.get('message', '')}"


def history(document):
    """A table of the runs the site remembers, newest first (``history``)."""
    entries = history_entries(document)
    if not entries:
        return ["No upgrade run is recorded on this site."]
    rows = [
        [
            entry.get("id"),
            entry.get("started"),
            entry.get("user"),
            _kind(entry),
            entry.get("result"),
            _duration(entry.get("duration")),
            _count(entry),
            selection(entry),
        ]
        for entry in entries
    ]
    lines = table(
        rows,
        ["ID", "STARTED", "USER", "KIND", "RESULT", "TIME", "DONE", "SELECTION"],
        indent="",
    )
    for entry in entries:
        error = run_error(entry)
        if error:
            lines.append(f"Run {entry.get('id')}: {error}")
    total = document.get("items_total") if isinstance(document, dict) else None
    if isinstance(total, int) and total > len(entries):
        lines.append(f"({len(entries)} of {total} runs; --limit shows more.)")
    return lines


def run_details(entry):
    """One recorded run: who, when, the steps, the error (``history ID``)."""
    lines = [
        f"Run {entry.get('id')}: {_kind(entry) or 'run'} of {selection(entry)} by "
        f"{_text(entry.get('user'))}",
        f"Started:   {_text(entry.get('started'))}",
        f"Finished:  {_text(entry.get('finished'))}"
        f" ({_duration(entry.get('duration'))})",
        f"Result:    {_text(entry.get('result'))}"
        + (", committed" if entry.get("committed") else ", nothing committed"),
    ]
    error = run_error(entry)
    if error:
        lines.append(f"Error:     {error}")
    steps = entry.get("steps") or []
    if steps:
        lines.append("")
        lines.extend(step_results(steps))
    return lines
