"""``plone-upgrade run``: upgrade, all or nothing, per profile or per step,
or as a dry run; or mark chosen steps done without running them."""

from plone_upgrade import output
from plone_upgrade import progress as progressbar
from plone_upgrade.door import FAILED
from plone_upgrade.door import OK
from plone_upgrade.options import command
from plone_upgrade.options import EXIT_CODES
from plone_upgrade.options import plural

import click


COMMIT_MODES = ("run", "profile", "step")


def _validate_run(profiles, all_profiles, steps, mark_done=False, **ignored):
    if all_profiles and profiles:
        raise click.UsageError("Give either --all or --profile, not both.")
    if steps and (profiles or all_profiles):
        raise click.UsageError("Give either --step or --profile/--all, not both.")
    if mark_done and (all_profiles or not (steps or profiles)):
        raise click.UsageError(
            "--mark-done records chosen steps as done without running them: name "
            "them with --step, or their profiles with --profile (not --all)."
        )


def run_body(dry_run, profiles, all_profiles, steps, commit=None, mark_done=False):
    """The body of ``POST @upgrade`` for the options of ``run``.

    ``commit`` and ``mark_done`` are sent only when given, so that a server
    with an older collective.upgradeapi still takes the plain runs.
    """
    body = {"dry_run": dry_run}
    if all_profiles:
        body["profiles"] = "all"
    elif profiles:
        body["profiles"] = list(profiles)
    if steps:
        body["steps"] = list(steps)
    if commit is not None:
        body["commit"] = commit
    if mark_done:
        body["mark_done"] = True
    return body


def _selection_text(body):
    if "steps" in body:
        return plural(len(body["steps"]), "chosen step")
    if body.get("profiles") == "all":
        return "every profile with pending steps"
    if "profiles" in body:
        return ", ".join(body["profiles"])
    return "Plone's core upgrade"


@click.command(epilog=EXIT_CODES)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run every step, then roll everything back; nothing is written.",
)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="ID",
    help="Upgrade this profile (repeatable), in the site's run order.",
)
@click.option(
    "--all",
    "all_profiles",
    is_flag=True,
    help="Upgrade every installed profile with pending steps, core first.",
)
@click.option(
    "--step",
    "steps",
    multiple=True,
    metavar="ID",
    help="Run this step only (repeatable; ids from `plan`).",
)
@click.option(
    "--commit",
    type=click.Choice(COMMIT_MODES),
    default=None,
    help="What one transaction holds: the whole run (all or nothing, the "
    "default), each profile, or each step. With profile or step, a failure "
    "keeps what was committed before it, and running again continues there.",
)
@click.option(
    "--mark-done",
    is_flag=True,
    help="Record the chosen steps (--step) or the pending steps of the chosen "
    "profiles (--profile) as done without running them.",
)
@click.option(
    "--report",
    is_flag=True,
    help="Also print the full report of a successful run.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show the progress on stderr while the run goes on: a bar on a "
    "terminal, one line per step otherwise (when the server offers GET "
    "@upgrade/status).",
)
@click.option(
    "--status-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Pause between two polls of GET @upgrade/status.",
)
@command(
    timeout=0.0,
    timeout_help="Give up waiting for the answer after this many seconds (0: no "
    "limit); the server finishes the run anyway.",
    validate=_validate_run,
)
def run(
    door,
    out,
    dry_run,
    profiles,
    all_profiles,
    steps,
    commit,
    mark_done,
    report,
    progress,
    status_interval,
):
    """Run the pending upgrades (POST @upgrade), all or nothing.

    Without --profile, --all or --step: Plone's core upgrade, exactly as
    Plone's own upgrade view runs it. If a step fails, nothing of the run is
    committed: the failed step, its error and the report are printed, and
    the exit code is 1. A dry run runs every step and commits nothing.

    With --commit profile or step, each profile or step is committed on its
    own: a failure aborts its unit only, and the output lists what stays
    committed. Running the same command again continues from there.

    With --mark-done, the chosen steps are recorded as done without running
    them (needs the permission 'collective.upgradeapi: Mark upgrade steps
    done', Manager by default).

    Over HTTP, checks first that the site answers with collective.upgradeapi
    (GET @upgrade), so that no other @upgrade service runs by mistake.

    Exit 0 when the run succeeded, 1 when a step failed, 2 on any other
    error (bad input: HTTP 400; another run going on: HTTP 409).
    """
    body = run_body(dry_run, profiles, all_profiles, steps, commit, mark_done)
    door.prepare_run()
    kind = "Dry run" if dry_run else "Upgrade"
    out.note(f"{kind} of {door.name}: {_announce(body, commit, mark_done)}...")
    shown = _progress_display(out) if progress else None
    try:
        status, document = door.upgrade(body, shown, interval=status_interval)
    except BaseException:
        if shown is not None:
            shown.close()
        raise
    results = document.get("steps", [])
    if shown is not None:
        finished = [s for s in results if s.get("status") in ("done", "marked_done")]
        shown.finish(len(finished), len(results), "done" if status == 200 else "failed")
    out.document(document)
    if status == 200 and not results:
        out.line("Nothing to upgrade: no pending steps in this selection.")
        return OK
    _show_results(out, document)
    if status != 200:
        _show_failure(out, document, kind)
        return FAILED
    out.line(_summary(document, dry_run, mark_done))
    if report:
        out.line()
        out.line("Report:")
        out.line(document.get("report", "").rstrip())
    return OK


def _announce(body, commit, mark_done):
    """What the run will do, in words."""
    what = _selection_text(body)
    if mark_done:
        what += ", marking steps done without running them"
    elif commit in ("profile", "step"):
        what += f", one transaction per {commit}"
    return what


def _progress_display(out):
    """A bar on a terminal; plain lines otherwise or with --json."""
    stderr = click.get_text_stream("stderr")
    if not out.as_json and progressbar.is_terminal(stderr):
        return progressbar.Bar(stderr)
    return progressbar.Lines(out.note)


def _summary(document, dry_run, mark_done):
    """The closing line of a run that did not fail."""
    results = document.get("steps", [])
    done = sum(1 for step in results if step.get("status") == "done")
    duration = document.get("duration")
    took = f" in {duration:.1f} s" if isinstance(duration, (int, float)) else ""
    if mark_done:
        marked = sum(1 for step in results if step.get("status") == "marked_done")
        what = "nothing was committed" if dry_run else "committed"
        return (
            f"{'Dry run' if dry_run else 'Done'}{took}: {plural(marked, 'step')} "
            f"marked done without running them; {what}."
        )
    if dry_run:
        return (
            f"Dry run finished{took}: {plural(done, 'step')} ran; nothing "
            "was committed."
        )
    commits = document.get("commits") or []
    units = ""
    if document.get("commit") in ("profile", "step"):
        units = f" in {plural(len(commits), 'transaction')}"
    return f"Upgrade finished{took}: {plural(done, 'step')} committed{units}."


def _show_results(out, document):
    """The step table, and the versions of the profiles the run touched."""
    results = document.get("steps", [])
    out.lines(output.step_results(results))
    touched = {step.get("profile") for step in results}
    profiles = [
        profile
        for profile in document.get("profiles", [])
        if profile.get("id") in touched
        or profile.get("versions", {}).get("before")
        != profile.get("versions", {}).get("after")
    ]
    if profiles:
        out.line()
        out.lines(output.profile_results(profiles))
    out.line()


def _show_failure(out, document, kind):
    """The failed step, its error and traceback, and the report."""
    failed = document.get("failed_step") or {}
    error = failed.get("error") or {}
    out.line(
        f"Failed step: {failed.get('title')!r} (profile {failed.get('profile')}, "
        f"id {failed.get('id')})"
    )
    out.line(f"Error: {error.get('type', 'Error')}: {error.get('message', '')}")
    if error.get("traceback"):
        out.line(error["traceback"].rstrip())
    out.line()
    out.line("Report:")
    out.line((document.get("report") or "").rstrip())
    out.line()
    commits = document.get("commits") or []
    if document.get("committed") and commits:
        out.lines(committed_units(document))
        unit = document.get("commit") or "unit"
        out.line(
            f"{kind} failed; the failing {unit} was aborted, what was committed "
            f"before it stays ({plural(len(commits), 'transaction')}). Run the "
            "same command again to continue from there."
        )
    else:
        out.line(f"{kind} failed; nothing was committed.")
    out.note(f"Error: {document.get('message')}")


def committed_units(document):
    """What a failed run with ``commit`` per profile or step made durable."""
    titles = {
        step.get("id"): step.get("title") or step.get("id")
        for step in document.get("steps", [])
    }
    lines = ["Committed before the failure (these stay):"]
    for unit in document.get("commits") or []:
        steps = unit.get("steps") or []
        txn = unit.get("transaction")
        lines.append(
            f"  {unit.get('unit')}: {plural(len(steps), 'step')}"
            + (f" (transaction {txn})" if txn else "")
        )
        lines.extend(f"    {titles.get(step_id, step_id)}" for step_id in steps)
    lines.append("")
    return lines
