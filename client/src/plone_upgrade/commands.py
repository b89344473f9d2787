"""The commands that read or stamp: ``wait``, ``check``, ``plan``,
``history`` and ``stamp`` (``run`` in :mod:`.run`, ``unlock`` and ``cancel``
in :mod:`.locks`)."""

from plone_upgrade import output
from plone_upgrade.door import FAILED
from plone_upgrade.door import Failure
from plone_upgrade.door import OK
from plone_upgrade.options import command
from plone_upgrade.options import EXIT_CODES
from plone_upgrade.options import plural

import click
import time


def _pending(info):
    profiles = [p for p in info.get("profiles", []) if output.pending_steps(p)]
    steps = sum(len(output.pending_steps(p)) for p in profiles)
    return profiles, steps


@click.command(epilog=EXIT_CODES)
@command(timeout=60.0, timeout_help="Seconds to wait for the answer (0: no limit).")
def check(door, out):
    """Tell whether the site needs upgrading: exit 0 if not, 1 if it does.

    Asks GET @upgrade. Counts the pending steps of every installed profile:
    Plone core, its core add-ons and third-party add-ons. With --json, prints
    the answer of GET @upgrade.

    Exit 0 when the site is up to date, 1 when upgrades are pending, 2 on
    an error.
    """
    info = door.upgrade_info()
    out.document(info)
    profiles, steps = _pending(info)
    downgraded = [p["id"] for p in info.get("profiles", []) if p.get("downgraded")]
    for profile_id in downgraded:
        out.note(
            f"Warning: {profile_id}: the database records a newer version than "
            "the code knows; was the code downgraded?"
        )
    if info.get("needs_upgrade"):
        out.line(
            f"Upgrades pending on {door.name}: {plural(steps, 'step')} in "
            f"{plural(len(profiles), 'profile')}."
        )
        out.lines(output.summary(info))
        out.line(
            "`plone-upgrade plan` lists the steps; `plone-upgrade run --all` runs them."
        )
        return FAILED
    core = info.get("versions", {})
    out.line(
        f"{door.name} is up to date (Plone profile version {core.get('instance')})."
    )
    return OK


@click.command(epilog=EXIT_CODES)
@click.option(
    "--profile",
    metavar="ID",
    help="Only this profile, e.g. Products.CMFPlone:plone (GET @upgrade?profile=ID).",
)
@command(timeout=60.0, timeout_help="Seconds to wait for the answer (0: no limit).")
def plan(door, out, profile):
    """List the pending upgrade steps, profile by profile, in run order.

    Shows each step's id (for `run --step`), its versions, whether
    GenericSetup proposes it, and its title. With --json, prints the answer of
    GET @upgrade.

    Exit 0 when the plan was shown (pending steps or not), 2 on an error.
    """
    info = door.upgrade_info(profile=profile)
    out.document(info)
    shown = [
        p
        for p in info.get("profiles", [])
        if output.pending_steps(p) or p.get("downgraded")
    ]
    if not shown:
        what = f"profile {profile}" if profile else door.name
        out.line(f"Nothing to upgrade: {what} is up to date.")
        return OK
    out.lines(output.plan({"profiles": shown}))
    profiles, steps = _pending({"profiles": shown})
    if steps:
        out.line()
        out.line(
            f"{plural(steps, 'pending step')} in {plural(len(profiles), 'profile')}."
        )
    return OK


@click.command(epilog=EXIT_CODES)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Pause between attempts.",
)
@command(
    timeout=120.0,
    timeout_help="Give up after this many seconds in all (0: wait for ever).",
    in_process=False,
)
def wait(client, out, interval):
    """Wait until the site answers GET @upgrade.

    For containers that start slowly: tries again while the connection is
    refused, times out, or the answer is 404 or 502-504 (the site is not
    there yet, a proxy has no backend yet). Fails at once on 401 and 403,
    and when the site answers without collective.upgradeapi. Over HTTP
    only: with --zope-conf there is no server to wait for.

    Exit 0 when the site answers, 2 when it did not answer in time.
    """
    limit = client.timeout
    started = time.monotonic()
    attempts = 0
    announced = False
    while True:
        attempts += 1
        waited = time.monotonic() - started
        request_timeout = 10.0 if limit is None else max(0.1, min(10.0, limit - waited))
        try:
            info = client.upgrade_info(timeout=request_timeout)
        except Failure as failure:
            if not failure.retry:
                raise
            remaining = None if limit is None else limit - (time.monotonic() - started)
            if remaining is not None and remaining <= 0:
                raise Failure(
                    f"{client.url} did not answer within {limit:g} s "
                    f"({plural(attempts, 'attempt')}); last: {failure.message}",
                    error_type="Timeout",
                    document={
                        "type": "Timeout",
                        "message": f"{client.url} did not answer within {limit:g} s.",
                        "url": client.url,
                        "ready": False,
                        "attempts": attempts,
                        "last_error": failure.document,
                    },
                )
            if not announced:
                out.note(f"Waiting for {client.url}: {failure.message}")
                announced = True
            time.sleep(interval if remaining is None else min(interval, remaining))
            continue
        break
    waited = time.monotonic() - started
    out.document(
        {
            "url": client.url,
            "ready": True,
            "waited": round(waited, 3),
            "attempts": attempts,
            "needs_upgrade": info["needs_upgrade"],
        }
    )
    state = "upgrades are pending" if info["needs_upgrade"] else "it is up to date"
    out.line(f"{client.url} answers after {waited:.1f} s; {state}.")
    return OK


@click.command(epilog=EXIT_CODES)
@click.argument("run_id", required=False, type=click.IntRange(min=1))
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=25,
    show_default=True,
    help="Show at most this many runs, newest first.",
)
@click.option(
    "--report",
    is_flag=True,
    help="With RUN_ID: also print the run's report.",
)
@command(timeout=60.0, timeout_help="Seconds to wait for the answer (0: no limit).")
def history(door, out, run_id, limit, report):
    """Show the upgrade runs the site remembers (GET @upgrade/history).

    Who ran what and when, dry run or not, the result, the duration and the
    steps done. With RUN_ID, one run in full: its steps and its error (and
    with --report, its report). With --json, prints the server's answer.

    A server without the history service answers 404: "this server has no
    upgrade history", exit 2.

    Exit 0 when the history was shown, 2 on an error.
    """
    document = door.history(run_id=run_id, limit=limit)
    out.document(document)
    if run_id is None:
        out.lines(output.history(document))
        return OK
    out.lines(output.run_details(document))
    if report:
        out.line()
        out.line("Report:")
        out.line((document.get("report") or "").rstrip())
    return OK


@click.command(epilog=EXIT_CODES)
@click.argument("profiles", nargs=-1, required=True, metavar="PROFILE...")
@command(timeout=60.0, timeout_help="Seconds to wait for the answer (0: no limit).")
def stamp(door, out, profiles):
    """Record downgraded profiles at the version their code knows.

    A profile is downgraded when the database records a newer version than
    its code knows (its metadata.xml and its steps' destinations). Usually
    the code was downgraded: install the matching code instead. When the
    recorded version is wrong, stamping records each PROFILE at its code's
    version, with the lock held and the run in the history; no step runs.
    Only downgraded profiles can be
    stamped (POST @upgrade {"stamp": [...]}; needs the permission
    'collective.upgradeapi: Mark upgrade steps done', Manager by default).

    Exit 0 when every profile was stamped, 2 on an error (a profile unknown,
    not installed or not downgraded: HTTP 400; no permission: 403; another
    run going on: 409). Nothing is stamped when any profile is refused.
    """
    out.note(f"Stamp on {door.name}: {', '.join(profiles)}...")
    document = door.stamp(profiles)
    out.document(document)
    for profile in document.get("profiles", []):
        found = profile.get("versions", {})
        out.line(
            f"Stamped {profile.get('id')} at version {found.get('after')} "
            f"(was {found.get('before')})."
        )
    out.line()
    out.lines(output.profile_results(document.get("profiles", [])))
    if document.get("run_id") is not None:
        out.line()
        out.line(f"Recorded as run {document['run_id']} in the history.")
    return OK
