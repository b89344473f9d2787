"""The ``plone-upgrade`` command group and its console script."""

from plone_upgrade import options
from plone_upgrade.commands import cancel
from plone_upgrade.commands import check
from plone_upgrade.commands import history
from plone_upgrade.commands import plan
from plone_upgrade.commands import stamp
from plone_upgrade.commands import unlock
from plone_upgrade.commands import wait
from plone_upgrade.door import ERROR
from plone_upgrade.run import run

import click
import sys
import traceback


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 88},
    epilog=f"{options.EXIT_CODES}\n\n{options.ENVIRONMENT}",
)
@click.version_option(
    package_name="collective.upgradeapi.client", prog_name="plone-upgrade"
)
@options.with_options(*options.door_options(envvar="PLONE_ZOPE_CONF"))
@click.pass_context
def cli(ctx, zope_conf, site_id, all_sites):
    """See and run the upgrades of a Plone site, over HTTP or in-process.

    Over HTTP (--url), talks to the @upgrade REST services of
    collective.upgradeapi: Plone core and every add-on profile, true dry runs,
    all-or-nothing runs. Every call needs a user with the 'Manage portal'
    permission on the site.

    \b
    In CI, after the new image has started:
      plone-upgrade wait
      plone-upgrade check || plone-upgrade run --all --dry-run
      plone-upgrade run --all

    With --zope-conf, every command but wait opens the site's database in
    this process instead (no server needed, e.g. before it starts), with the
    same output, lock and history:

    \b
      plone-upgrade --zope-conf /app/etc/zope.conf --all-sites run --all

    `plone-upgrade COMMAND --help` describes each command.
    """
    options.remember(ctx, zope_conf, site_id, all_sites)


for _command in (wait, check, plan, run, stamp, history, unlock, cancel):
    cli.add_command(_command)


def main(args=None):
    """The ``plone-upgrade`` console script.

    An unexpected exception (a bug, a broken environment) exits with 2, not
    with Python's 1, which means "upgrades pending" or "a step failed".
    """
    try:
        return cli.main(args=args, prog_name="plone-upgrade")
    except Exception:
        traceback.print_exc()
        sys.exit(ERROR)
