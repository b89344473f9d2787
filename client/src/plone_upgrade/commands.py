"""The commands but ``run`` (:mod:`.run`), each thin over a door (:mod:`.door`)."""

from click import option
from plone_upgrade import text
from plone_upgrade.door import FAILED
from plone_upgrade.door import Failure
from plone_upgrade.door import OK
from plone_upgrade.options import command
from plone_upgrade.text import plural

import click
import math
import time


@command()
def check(door, out):
    """Tell whether the site needs upgrading: exit 0 if not, 1 if it does.

    Counts the pending steps of every installed profile (GET @upgrade).
    """
    info = door.upgrade_info()
    out.document(info)
    for profile in info.get("profiles", []):
        if profile.get("downgraded"):
            out.note(
                f"Warning: {profile['id']}: the database records a newer version "
                "than the code knows; was the code downgraded?"
            )
    if not info.get("needs_upgrade"):
        version = info.get("versions", {}).get("instance")
        out.line(f"{door.name} is up to date (Plone profile version {version}).")
        return OK
    pending = text.pending(info["profiles"], "step")
    out.line(f"Upgrades pending on {door.name}: {pending}.")
    out.lines(text.summary(info))
    out.line(
        "`plone-upgrade plan` lists the steps; `plone-upgrade run --all` runs them."
    )
    return FAILED


@command(
    option(
        "--profile",
        metavar="ID",
        help="Only this profile, e.g. Products.CMFPlone:plone.",
    )
)
def plan(door, out, profile):
    """List the pending upgrade steps, profile by profile, in run order.

    Each step's id (for `run --step`), versions, whether GenericSetup
    proposes it, and title (GET @upgrade).
    """
    info = door.upgrade_info(profile=profile)
    out.document(info)
    profiles = info.get("profiles", [])
    shown = [p for p in profiles if text.pending_steps(p) or p.get("downgraded")]
    if not shown:
        what = f"profile {profile}" if profile else door.name
        out.line(f"Nothing to upgrade: {what} is up to date.")
        return OK
    out.lines(text.plan(shown))
    if any(map(text.pending_steps, shown)):
        out.lines(["", f"{text.pending(shown, 'pending step')}."])
    return OK


@command(
    option(
        "--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True
    ),
    timeout=120.0,
    timeout_help="Give up after this many seconds in all (0: wait for ever).",
    in_process=False,
)
def wait(client, out, interval):
    """Wait until the site answers GET @upgrade (over HTTP only).

    Tries again while the connection is refused, times out, or the answer is
    404 or 502-504; fails at once on 401, 403, or another service.
    """
    started, attempts = time.monotonic(), 0
    deadline = started + (client.timeout or math.inf)
    while True:
        attempts += 1
        try:
            timeout = max(0.1, min(10.0, deadline - time.monotonic()))
            info = client.upgrade_info(timeout=timeout)
            break
        except Failure as failure:
            left = deadline - time.monotonic()
            if not failure.retry:
                raise
            if left <= 0:
                late = f"{client.url} did not answer within {client.timeout:g} s"
                document = {"type": "Timeout", "message": f"{late}.", "url": client.url}
                document.update(ready=False, attempts=attempts)
                document["last_error"] = failure.document
                tried = plural(attempts, "attempt")
                raise Failure(f"{late} ({tried}); last: {failure.message}", document)
            if attempts == 1:
                out.note(f"Waiting for {client.url}: {failure.message}")
            time.sleep(min(interval, left))
    waited = time.monotonic() - started
    document = {"url": client.url, "ready": True, "waited": round(waited, 3)}
    out.document(
        {**document, "attempts": attempts, "needs_upgrade": info["needs_upgrade"]}
    )
    state = "upgrades are pending" if info["needs_upgrade"] else "it is up to date"
    out.line(f"{client.url} answers after {waited:.1f} s; {state}.")
    return OK


@command(
    click.argument("run_id", required=False, type=click.IntRange(min=1)),
    option("--limit", type=click.IntRange(min=1), default=25, help="At most 25 runs."),
    option("--report", is_flag=True, help="With RUN_ID: also print the run's report."),
)
def history(door, out, run_id, limit, report):
    """Show the upgrade runs the site remembers (GET @upgrade/history).

    Who ran what and when, the result, the steps done; with RUN_ID, one run.
    """
    document = door.history(run_id=run_id, limit=limit)
    out.document(document)
    if run_id is None:
        out.lines(text.history(document))
    else:
        out.lines(text.run_details(document) + text.changes(document))
        out.lines(text.report(document) if report else [])
    return OK


@command(click.argument("profiles", nargs=-1, required=True, metavar="PROFILE..."))
def stamp(door, out, profiles):
    """Record downgraded profiles at the version their code knows.

    For a database that records a newer version than the code knows; no step
    runs (POST @upgrade {"stamp": [...]}). Nothing is stamped on an error.
    """
    out.note(f"Stamp on {door.name}: {', '.join(profiles)}...")
    document = door.upgrade({"stamp": list(profiles)})[1]
    out.document(document)
    for profile in document.get("profiles", []):
        found = profile.get("versions", {})
        out.line(
            f"Stamped {profile.get('id')} at version {found.get('after')} "
            f"(was {found.get('before')})."
        )
    out.lines(text.profile_results(document))
    if document.get("run_id") is not None:
        out.lines(["", f"Recorded as run {document['run_id']} in the history."])
    return OK


WAIT_OPTION = option(
    "--wait",
    "wait_for",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="Then wait up to SECONDS for the run to stop.",
)
EACH_ANSWER = "Seconds to wait for each answer (0: no limit)."


@command(
    option(
        "--force", is_flag=True, help="When the lock is alive: ask its run to cancel."
    ),
    WAIT_OPTION,
    timeout_help=EACH_ANSWER,
)
def unlock(door, out, force, wait_for):
    """Break the upgrade lock of a run that died (DELETE @upgrade/lock).

    A live lock is refused (exit 2); with --force its run is asked to cancel.
    """
    done = door.unlock(force)
    nothing = {"lock": None, "broken": False, "message": "No upgrade lock."}
    none = "There is no upgrade lock: nothing to break."
    wait_for = 0 if done is None or done["broken"] else wait_for
    return _answered(door, out, done, nothing, none, wait_for)


@command(WAIT_OPTION, timeout_help=EACH_ANSWER)
def cancel(door, out, wait_for):
    """Cancel the running upgrade (DELETE @upgrade/run).

    It stops at its next step boundary and rolls back what was not committed.
    """
    done = door.cancel()
    nothing = {"lock": None, "message": "No upgrade is running."}
    none = "No upgrade is running: nothing to cancel."
    return _answered(door, out, done, nothing, none, wait_for)


def _answered(door, out, done, nothing, none, wait_for):
    """Show what ``unlock`` or ``cancel`` did, then wait for the lock to go."""
    if done is None:
        out.document(nothing)
        out.line(none)
        return OK
    out.document(done)
    out.line(describe(done["lock"]))
    out.line(done["message"])
    if not wait_for:
        return OK
    out.note(f"Waiting up to {wait_for:g} s for the run to stop...")
    deadline = time.monotonic() + wait_for
    while door.lock() is not None:
        if time.monotonic() >= deadline:
            raise Failure(
                f"The run still holds the lock after {wait_for:g} s: it is inside "
                "a long step, or its process froze. `plone-upgrade unlock` tells "
                "whether it looks alive.",
                error_type="Timeout",
            )
        time.sleep(0.5)
    out.line("The run stopped; the lock is free.")
    return OK


def describe(lock):
    """The lock in words, one line."""
    holder = lock.get("holder")
    where = "an unknown process"
    if holder:
        where = f"process {holder.get('pid')} on {holder.get('host')}"
    state = lock.get("state") or ("stale" if lock.get("stale") else "alive")
    reason = {"process_gone": "its process is gone", "no_heartbeat": "no heartbeat"}
    if state == "stale" and lock.get("stale_reason") in reason:
        state = f"stale ({reason[lock['stale_reason']]})"
    what = "Dry run" if lock.get("dry_run") else "Upgrade"
    run = f" (run {lock['run_id']})" if lock.get("run_id") else ""
    return (
        f"{what}{run} by {lock.get('user')} since {lock.get('since')}, {where}, "
        f"last heartbeat {lock.get('heartbeat')}: {state}."
    )
