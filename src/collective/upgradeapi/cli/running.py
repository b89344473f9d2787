"""``plone-upgrade run``: upgrade, all or nothing, or as a dry run."""

from collective.upgradeapi.cli import output
from collective.upgradeapi.cli.failure import FAILED
from collective.upgradeapi.cli.failure import OK
from collective.upgradeapi.cli.options import command
from collective.upgradeapi.cli.options import EXIT_CODES
from collective.upgradeapi.cli.options import plural

import click


def _validate_run(profiles, all_profiles, steps, **ignored):
    if all_profiles and profiles:
        raise click.UsageError("Give either --all or --profile, not both.")
    if steps and (profiles or all_profiles):
        raise click.UsageError("Give either --step or --profile/--all, not both.")


def run_body(dry_run, profiles, all_profiles, steps):
    """The body of ``POST @upgrade`` for the options of ``run``."""
    body = {"dry_run": dry_run}
    if all_profiles:
        body["profiles"] = "all"
    elif profiles:
        body["profiles"] = list(profiles)
    if steps:
        body["steps"] = list(steps)
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
    "--report",
    is_flag=True,
    help="Also print the full report of a successful run.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show the current step on stderr while the run goes on (when the "
    "server offers GET @upgrade/status).",
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
    report,
    progress,
    status_interval,
):
    """Run the pending upgrades (POST @upgrade), all or nothing.

    Without --profile, --all or --step: Plone's core upgrade, exactly as
    Plone's own upgrade view runs it. If a step fails, nothing of the run is
    committed: the failed step, its error and the report are printed, and
    the exit code is 1. A dry run runs every step and commits nothing.

    Over HTTP, checks first that the site answers with collective.upgradeapi
    (GET @upgrade), so that no other @upgrade service runs by mistake.

    Exit 0 when the run succeeded, 1 when a step failed, 2 on any other
    error (bad input: HTTP 400; another run going on: HTTP 409).
    """
    body = run_body(dry_run, profiles, all_profiles, steps)
    door.prepare_run()
    kind = "Dry run" if dry_run else "Upgrade"
    out.note(f"{kind} of {door.name}: {_selection_text(body)}...")
    on_progress = None
    if progress:

        def on_progress(status):
            out.note(f"  {output.progress(status)}")

    status, document = door.upgrade(body, on_progress, interval=status_interval)
    out.document(document)
    results = document.get("steps", [])
    if status == 200 and not results:
        out.line("Nothing to upgrade: no pending steps in this selection.")
        return OK
    _show_results(out, document)
    if status != 200:
        _show_failure(out, document, kind)
        return FAILED
    done = sum(1 for step in results if step.get("status") == "done")
    duration = document.get("duration")
    took = f" in {duration:.1f} s" if isinstance(duration, (int, float)) else ""
    if dry_run:
        out.line(
            f"Dry run finished{took}: {plural(done, 'step')} ran; nothing "
            "was committed."
        )
    else:
        out.line(f"Upgrade finished{took}: {plural(done, 'step')} committed.")
    if report:
        out.line()
        out.line("Report:")
        out.line(document.get("report", "").rstrip())
    return OK


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
    out.line(f"{kind} failed; nothing was committed.")
    out.note(f"Error: {document.get('message')}")
