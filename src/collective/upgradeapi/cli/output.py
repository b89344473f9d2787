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


def summary(info):
    """One line per profile with pending steps (``check``)."""
    lines = []
    for profile in info.get("profiles", []):
        pending = pending_steps(profile)
        profile_versions = profile.get("versions", {})
        if profile.get("downgraded"):
            state = "database is newer than the code"
        elif pending:
            state = f"{len(pending)} step{'s' if len(pending) != 1 else ''}"
        else:
            continue
        lines.append(
            [
                profile.get("id"),
                versions(profile_versions.get("instance"), profile_versions.get("fs")),
                state,
            ]
        )
    return table(lines, ["PROFILE", "VERSION", "PENDING"]) if lines else []


def plan(info):
    """The pending steps of each profile (``plan``)."""
    lines = []
    for profile in info.get("profiles", []):
        profile_versions = profile.get("versions", {})
        pending = pending_steps(profile)
        title = profile.get("title") or ""
        core = " (core)" if profile.get("core") else ""
        header = f"{profile.get('id')}{core}"
        if title and title != profile.get("id"):
            header += f": {title}"
        header += ", " + versions(
            profile_versions.get("instance"), profile_versions.get("fs")
        )
        if profile.get("downgraded"):
            header += (
                ": the database records a newer version than the code; "
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


def progress(status):
    """One line for a status document of ``GET @upgrade/status``."""
    current = status.get("current_step")
    if isinstance(current, dict):
        name = current.get("title") or current.get("id") or ""
        if current.get("profile"):
            name += f" ({current['profile']})"
    else:
        name = _text(current, "")
    done, total = status.get("steps_done"), status.get("steps_total")
    counter = f"[{_text(done, '?')}/{_text(total, '?')}]"
    state = _text(status.get("state"), "")
    return " ".join(part for part in (counter, state, name) if part)


def history_entries(document):
    """The list of runs in a ``GET @upgrade/history`` answer."""
    if isinstance(document, list):
        return document
    for key in ("items", "history", "entries", "runs"):
        if isinstance(document.get(key), list):
            return document[key]
    return []


def _first(entry, *keys):
    for key in keys:
        if entry.get(key) not in (None, ""):
            return entry[key]
    return None


def _result(entry):
    result = _first(entry, "result", "status", "state", "outcome")
    if isinstance(result, dict):
        result = _first(result, "status", "type", "message")
    if result is None and isinstance(entry.get("ok"), bool):
        result = "ok" if entry["ok"] else "failed"
    return result


def _what(entry):
    steps = entry.get("steps")
    if isinstance(steps, list):
        steps = len(steps)
    profiles = entry.get("profiles")
    if isinstance(profiles, list):
        names = [p.get("id") if isinstance(p, dict) else str(p) for p in profiles]
        profiles = ", ".join(name for name in names if name)
    parts = []
    if steps is not None:
        parts.append(f"{steps} step{'s' if steps != 1 else ''}")
    if profiles:
        parts.append(str(profiles))
    return "; ".join(parts)


def history(document):
    """A table of the runs the site remembers (``history``)."""
    rows = []
    for entry in history_entries(document):
        if not isinstance(entry, dict):
            continue
        dry_run = entry.get("dry_run")
        rows.append(
            [
                _first(entry, "started", "date", "when", "time", "finished"),
                _first(entry, "user", "userid", "who", "actor"),
                "dry run" if dry_run else ("run" if dry_run is False else None),
                _result(entry),
                _duration(entry.get("duration")),
                _what(entry),
            ]
        )
    if not rows:
        return ["No upgrade has been recorded on this site."]
    return table(rows, ["WHEN", "WHO", "KIND", "RESULT", "TIME", "WHAT"], indent="")
