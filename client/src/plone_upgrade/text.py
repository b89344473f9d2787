"""The commands' text: tables and summaries for people and CI logs, and the
progress of ``run`` on stderr."""

from plone_upgrade.changes import render

import click
import shutil


def plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _text(value, empty="-"):
    return empty if value is None or value == "" else str(value)


def _duration(seconds):
    return f"{seconds:.2f}s" if isinstance(seconds, (int, float)) else "-"


def versions(before, after):
    before, after = _text(before, "?"), _text(after, "?")
    return before if before == after else f"{before} -> {after}"


def _span(step):
    return versions(step.get("source"), step.get("dest"))


def table(rows, headers, indent="  "):
    """Lines of a plain table; the last column is not padded."""
    rows = [headers, *([_text(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers) - 1)]
    return [
        (indent + "  ".join([*map(str.ljust, row, widths), row[-1]])).rstrip()
        for row in rows
    ]


def pending_steps(profile):
    return [step for step in profile.get("steps", []) if not step.get("done")]


def pending(profiles, word):
    """``N steps in M profiles``, counting the pending steps only."""
    profiles = [p for p in profiles if pending_steps(p)]
    steps = sum(len(pending_steps(p)) for p in profiles)
    return f"{plural(steps, word)} in {plural(len(profiles), 'profile')}"


def profile_versions(profile):
    """``instance -> where a run ends``; past ``metadata.xml`` when the
    profile's steps go further than it says (``metadata_lags``)."""
    known = profile.get("versions", {})
    fs = known.get("fs")
    dests = [step.get("dest") for step in pending_steps(profile) if step.get("dest")]
    end = dests[-1] if dests and profile.get("metadata_lags") else fs
    text = versions(known.get("instance"), end)
    return text + (f" (metadata.xml: {_text(fs)})" if end != fs else "")


def summary(info):
    """One line per profile with pending steps (``check``)."""
    rows = []
    for profile in info.get("profiles", []):
        state = plural(len(pending_steps(profile)), "step")
        if profile.get("downgraded"):
            state = "database is newer than the code"
        if profile.get("downgraded") or pending_steps(profile):
            rows.append([profile["id"], profile_versions(profile), state])
    return table(rows, ["PROFILE", "VERSION", "PENDING"]) if rows else []


def plan(profiles):
    """The pending steps of each profile (``plan``)."""
    lines = []
    for profile in profiles:
        pending, title = pending_steps(profile), profile.get("title")
        header = profile["id"] + (" (core)" if profile.get("core") else "")
        header += f": {title}" if title and title != profile["id"] else ""
        header += f", {profile_versions(profile)}" + (
            ": the database records a newer version than the code knows; it "
            "cannot be upgraded"
            if profile.get("downgraded")
            else f", {plural(len(pending), 'pending step')}"
        )
        rows = [
            [s["id"], _span(s), "yes" if s.get("proposed") else "no", s.get("title")]
            for s in pending
        ]
        headers = ["STEP ID", "VERSIONS", "PROPOSED", "TITLE"]
        lines += [header, *(table(rows, headers) if rows else []), ""]
    return lines[:-1]


def step_results(steps):
    """One row per step attempted (``run``, ``history ID``)."""
    rows = [
        [
            step.get("status"),
            _duration(step.get("duration")),
            step.get("profile"),
            _span(step),
            step.get("title"),
        ]
        for step in steps
    ]
    return table(rows, ["STATUS", "TIME", "PROFILE", "VERSIONS", "TITLE"])


def profile_results(document):
    """The versions before and after a run (``run``, ``stamp``), and the code's,
    of each profile that had a step or whose version moved; after an empty
    line, nothing without one."""
    touched = {step.get("profile") for step in document.get("steps") or []}
    rows = []
    for profile in document.get("profiles", []):
        found = profile.get("versions", {})
        before, after = found.get("before"), found.get("after")
        if profile.get("id") in touched or before != after:
            rows.append([profile.get("id"), versions(before, after), found.get("fs")])
    return ["", *table(rows, ["PROFILE", "VERSION", "CODE"])] if rows else []


def changes(document):
    """What each step changed, as a plan (:mod:`plone_upgrade.changes`), after
    an empty line; nothing when the run did not record it. Colours on a
    terminal."""
    if document.get("changes") is None:
        return []
    color = click.get_text_stream("stdout").isatty()
    plan = render(document.get("steps") or [], color=color).rstrip("\n")
    return ["", "Changes:", plan] if plan else []


def report(document):
    """The report of a run, after an empty line."""
    return ["", "Report:", (document.get("report") or "").rstrip()]


def selection(entry):
    """What a recorded run was asked to do, in words."""
    chosen = entry.get("selection") or {}
    if chosen.get("steps"):
        return f"steps {', '.join(chosen['steps'])}"
    if chosen.get("profiles") == "all":
        return "all profiles"
    return ", ".join(chosen.get("profiles") or []) or "core upgrade"


def _kind(entry):
    return {True: "dry run", False: "run"}.get(entry.get("dry_run"))


def run_error(entry):
    """One line for the error of a recorded run, or ``None``."""
    error = entry.get("error")
    if not isinstance(error, dict):
        return None
    step = error.get("step")
    where = ""
    if isinstance(step, dict):
        where = f" at step {step.get('title')!r} ({step.get('profile')})"
    return f"{error.get('type', 'Error')}{where}: {error.get('message', '')}"


def history(document):
    """A table of the runs the site remembers, newest first (``history``)."""
    entries = [item for item in document.get("items") or [] if isinstance(item, dict)]
    if not entries:
        return ["No upgrade run is recorded on this site."]
    rows = []
    for entry in entries:
        steps = entry.get("steps")
        done = None
        if isinstance(steps, list):
            done = f"{sum(s.get('status') == 'done' for s in steps)}/{len(steps)}"
        row = [entry.get(key) for key in ("id", "started", "user")]
        row += [_kind(entry), entry.get("result"), _duration(entry.get("duration"))]
        rows.append([*row, done, selection(entry)])
    headers = ["ID", "STARTED", "USER", "KIND", "RESULT", "TIME", "DONE", "SELECTION"]
    lines = table(rows, headers, indent="")
    lines += [f"Run {e.get('id')}: {run_error(e)}" for e in entries if run_error(e)]
    total = document.get("items_total")
    if isinstance(total, int) and total > len(entries):
        lines.append(f"({len(entries)} of {total} runs; --limit shows more.)")
    return lines


def run_details(entry):
    """One recorded run: who, when, the steps, the error (``history ID``)."""
    committed = ", committed" if entry.get("committed") else ", nothing committed"
    lines = [
        f"Run {entry.get('id')}: {_kind(entry) or 'run'} of {selection(entry)} by "
        f"{_text(entry.get('user'))}",
        f"Started:   {_text(entry.get('started'))}",
        f"Finished:  {_text(entry.get('finished'))} "
        f"({_duration(entry.get('duration'))})",
        f"Result:    {_text(entry.get('result'))}{committed}",
    ]
    if run_error(entry):
        lines.append(f"Error:     {run_error(entry)}")
    if entry.get("steps"):
        lines += ["", *step_results(entry["steps"])]
    return lines


def step_name(status):
    """The step a status document says runs now: ``Title (profile)``."""
    current = status.get("current_step")
    if not isinstance(current, dict):
        return _text(current, "")
    name = current.get("title") or current.get("id") or ""
    return name + (f" ({current['profile']})" if current.get("profile") else "")


def bar(status, width=20):
    """A status document as a bar: ``[#########...]  45%  9/20  Title (profile)``."""
    done, total = status.get("steps_done"), status.get("steps_total")
    part = status.get("progress")
    part = part / 100 if isinstance(part, (int, float)) else None
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        part = done / total
    part = None if part is None else max(0.0, min(1.0, part))
    filled = round(width * (part or 0.0))
    line = f"[{'#' * filled}{'.' * (width - filled)}] "
    line += "  ?%" if part is None else f"{round(100 * part):3d}%"
    if isinstance(total, int):
        line += f"  {done if isinstance(done, int) else '?'}/{total}"
    state, name = status.get("state"), step_name(status)
    if state == "committing" or (state not in (None, "running") and not name):
        name = str(state)
    line += f"  {name}" if name else ""
    return line + (" (no sign of life from the server)" if status.get("stale") else "")


def is_terminal(stream):
    """Whether ``stream`` is a terminal (not closed, not a pipe)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """The progress of ``run`` on stderr, from status documents (those of
    ``GET @upgrade/status``): a bar redrawn in place on a terminal, else one
    line per step as it starts (``  [3/12] Title (profile)``), for CI logs.
    One writer at a time: over HTTP a thread of its own polls the status until
    the answer comes, and reports nothing once stopped, before :meth:`end`."""

    def __init__(self, out, stream=None, columns=None):
        self.out = out
        self.stream = stream or click.get_text_stream("stderr")
        self.terminal = not out.as_json and is_terminal(self.stream)
        self.columns = columns or shutil.get_terminal_size((80, 24)).columns
        self.last = ""  # the line drawn last

    def __call__(self, status):
        if self.terminal:
            return self.draw(bar(status))
        if status.get("current_step") and status.get("state") in (None, "running"):
            done, total = status.get("steps_done"), status.get("steps_total")
            if isinstance(done, int):
                done = min(done + 1, total) if isinstance(total, int) else done + 1
            line = f"  [{_text(done, '?')}/{_text(total, '?')}] {step_name(status)}"
            stale = " (no sign of life from the server for a while)"
            self.out.note(line + (stale if status.get("stale") else ""))

    def draw(self, line):
        line = line[: max(10, self.columns - 1)]
        padding = " " * max(0, len(self.last) - len(line))
        self.stream.write(f"\r{line}{padding}")
        self.stream.flush()
        self.last = line

    def end(self, status=None):
        """End the bar's line, if one was drawn, with the last ``status``."""
        if self.last:
            if status is not None:
                self.draw(bar(status))
            self.stream.write("\n")
            self.stream.flush()
