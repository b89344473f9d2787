"""``plone-upgrade history``: what ran, when, by whom."""

from collective.upgradeapi.cli import output
from collective.upgradeapi.cli.failure import OK
from collective.upgradeapi.cli.options import command
from collective.upgradeapi.cli.options import EXIT_CODES

import click


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
