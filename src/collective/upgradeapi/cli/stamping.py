"""``plone-upgrade stamp``: record downgraded profiles at their code's version.

Over HTTP: ``POST @upgrade`` with ``{"stamp": [...]}``. In-process:
:func:`collective.upgradeapi.stamp.stamp`, imported only then.
"""

from collective.upgradeapi.cli import output
from collective.upgradeapi.cli.failure import OK
from collective.upgradeapi.cli.options import command
from collective.upgradeapi.cli.options import EXIT_CODES

import click


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
