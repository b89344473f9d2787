"""``plone-upgrade check`` and ``plan``: what the site needs."""

from collective.upgradeapi.cli import output
from collective.upgradeapi.cli.failure import FAILED
from collective.upgradeapi.cli.failure import OK
from collective.upgradeapi.cli.options import command
from collective.upgradeapi.cli.options import EXIT_CODES
from collective.upgradeapi.cli.options import plural

import click


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
