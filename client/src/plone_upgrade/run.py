"""``plone-upgrade run``: upgrade, all or nothing, per profile or per step,
or as a dry run; or mark chosen steps done without running them."""

from click import option
from plone_upgrade import text
from plone_upgrade.door import FAILED
from plone_upgrade.door import OK
from plone_upgrade.options import command
from plone_upgrade.text import plural

import click


def _validate(profiles, all_profiles, steps, mark_done, **ignored):
    if all_profiles and profiles:
        raise click.UsageError("Give either --all or --profile, not both.")
    if steps and (profiles or all_profiles):
        raise click.UsageError("Give either --step or --profile/--all, not both.")
    if mark_done and (all_profiles or not (steps or profiles)):
        raise click.UsageError(
            "--mark-done records chosen steps as done without running them: name "
            "them with --step, or their profiles with --profile (not --all)."
        )


@command(
    option(
        "--dry-run", is_flag=True, help="Run every step, then roll everything back."
    ),
    option("--profile", "profiles", multiple=True, metavar="ID", help="This profile."),
    option("--all", "all_profiles", is_flag=True, help="Every profile, core first."),
    option(
        "--step", "steps", multiple=True, metavar="ID", help="This step (see plan)."
    ),
    option(
        "--commit",
        type=click.Choice(("run", "profile", "step")),
        help="What one transaction holds: the whole run (the default), each profile, "
        "or each step; then a failure keeps what was committed before it.",
    ),
    option(
        "--mark-done", is_flag=True, help="Record the chosen steps as done; run none."
    ),
    option(
        "--hold-writes/--no-hold-writes",
        default=None,
        help="Hold other writers (503) for the whole run, or never; by default the "
        "site's choice (writes are held only while a unit runs again after a write "
        "conflict).",
    ),
    option(
        "--changes/--no-changes",
        default=None,
        help="Report what each step changed (+ added, ~ changed, - removed); on by "
        "default for a dry run.",
    ),
    option("--report", is_flag=True, help="Also print the full report of a run."),
    option(
        "--progress/--no-progress", default=True, help="Show the progress on stderr."
    ),
    option(
        "--status-interval",
        type=click.FloatRange(min=0.05),
        default=1.0,
        show_default=True,
        metavar="SECONDS",
        help="Pause between two polls of GET @upgrade/status.",
    ),
    timeout=0.0,
    timeout_help="Give up waiting for the answer after this many seconds (0: no "
    "limit); the server finishes the run anyway.",
    validate=_validate,
)
def run(door, out, dry_run, profiles, all_profiles, steps, mark_done, **shown):
    """Run the pending upgrades (POST @upgrade), all or nothing.

    Without --profile, --all or --step: Plone's core upgrade. A failed step
    exits 1; nothing is committed, or with --commit profile or step what was
    committed before it stays. Over HTTP, nothing is posted before
    collective.upgradeapi answered GET @upgrade.
    """
    # Options are sent only when given: an older server takes the plain runs.
    given = {key: shown.pop(key) for key in ("commit", "changes", "hold_writes")}
    body = {"dry_run": dry_run, **{k: v for k, v in given.items() if v is not None}}
    what = "Plone's core upgrade"
    if steps:
        body["steps"], what = list(steps), plural(len(steps), "chosen step")
    elif all_profiles or profiles:
        body["profiles"] = "all" if all_profiles else list(profiles)
        what = (
            "every profile with pending steps" if all_profiles else ", ".join(profiles)
        )
    if mark_done:
        body["mark_done"] = True
        what += ", marking steps done without running them"
    elif body.get("commit") in ("profile", "step"):
        what += f", one transaction per {body['commit']}"
    kind = "Dry run" if dry_run else "Upgrade"
    out.note(f"{kind} of {door.name}: {what}...")
    return _run(door, out, body, kind, **shown)


def _run(door, out, body, kind, report, progress, status_interval):
    """Run ``body`` showing its progress, then its outcome; the exit code."""
    shown, last = text.Progress(out) if progress else None, None
    try:
        status, document = door.upgrade(body, shown, interval=status_interval)
        results = document.get("steps", [])
        ended = sum(step.get("status") in ("done", "marked_done") for step in results)
        state = "done" if status == 200 else "failed"
        last = {"steps_done": ended, "steps_total": len(results), "state": state}
    finally:
        if shown is not None:
            shown.end(last)
    out.document(document)
    if status == 200 and not results:
        out.line("Nothing to upgrade: no pending steps in this selection.")
        return OK
    out.lines(text.step_results(results))
    out.lines(text.changes(document))
    out.lines(text.profile_results(document))
    out.line()
    if status != 200:
        out.lines(_failure(document, kind))
        out.note(f"Error: {document.get('message')}")
        return FAILED
    out.line(_summary(document, body))
    out.lines(text.report(document) if report else [])
    return OK


def _summary(document, body):
    """The closing line of a run that did not fail."""
    results = document.get("steps", [])
    done = sum(step.get("status") == "done" for step in results)
    duration = document.get("duration")
    took = f" in {duration:.1f} s" if isinstance(duration, (int, float)) else ""
    if body.get("mark_done"):
        marked = sum(step.get("status") == "marked_done" for step in results)
        kind, what = "Done", "committed"
        if body["dry_run"]:
            kind, what = "Dry run", "nothing was committed"
        return (
            f"{kind}{took}: {plural(marked, 'step')} marked done without running "
            f"them; {what}."
        )
    if body["dry_run"]:
        ran = plural(done, "step")
        return f"Dry run finished{took}: {ran} ran; nothing was committed."
    units = ""
    if document.get("commit") in ("profile", "step"):
        units = f" in {plural(len(document.get('commits') or []), 'transaction')}"
    return f"Upgrade finished{took}: {plural(done, 'step')} committed{units}."


def _failure(document, kind):
    """The failed step, its error and traceback, the report, and what a run
    with ``commit`` per profile or step committed before the failure."""
    failed = document.get("failed_step") or {}
    error = failed.get("error") or {}
    lines = [
        f"Failed step: {failed.get('title')!r} (profile {failed.get('profile')}, "
        f"id {failed.get('id')})",
        f"Error: {error.get('type', 'Error')}: {error.get('message', '')}",
        *([error["traceback"].rstrip()] if error.get("traceback") else []),
        *text.report(document),
        "",
    ]
    commits = document.get("commits") or []
    if not (document.get("committed") and commits):
        return [*lines, f"{kind} failed; nothing was committed."]
    titles = {step.get("id"): step.get("title") for step in document.get("steps", [])}
    lines.append("Committed before the failure (these stay):")
    for unit in commits:
        steps, txn = unit.get("steps") or [], unit.get("transaction")
        txn = f" (transaction {txn})" if txn else ""
        lines.append(f"  {unit.get('unit')}: {plural(len(steps), 'step')}{txn}")
        lines += [f"    {titles.get(step) or step}" for step in steps]
    unit, count = document.get("commit") or "unit", plural(len(commits), "transaction")
    return [
        *lines,
        "",
        f"{kind} failed; the failing {unit} was aborted, what was committed "
        f"before it stays ({count}). Run the same command again to continue "
        "from there.",
    ]
