"""The command group, and what every command shares: its options, the door.

:func:`command` makes ``f(door, out, **options)`` a command; with ``--zope-conf``
the door is the in-process one collective.upgradeapi registers (:data:`IN_PROCESS`).
"""

from click import option
from click.core import ParameterSource
from importlib.metadata import entry_points
from plone_upgrade.door import ERROR
from plone_upgrade.door import Failure
from plone_upgrade.door import Output
from plone_upgrade.http import Client
from typing import NamedTuple

import click
import functools
import os
import sys
import traceback


COMMANDLINE = ParameterSource.COMMANDLINE
IN_PROCESS = ("plone_upgrade.doors", "zope_conf")
EXIT_CODES = """\b
Exit codes:
  0  success; for `check`: the site is up to date
  1  `check`: upgrades are pending; `run`: a step failed (HTTP 500
     UpgradeFailed); nothing was committed, or with --commit profile or
     step what was committed before it stays
  2  usage error, connection refused, timeout, HTTP 400, 401, 403, 404,
     409 or any other error; the message is on stderr"""
ENVIRONMENT = """\b
Environment:
  PLONE_URL        the site's URL (--url)
  PLONE_USER       user for basic authentication (--user)
  PLONE_PASSWORD   that user's password; asked for on a terminal otherwise
  PLONE_TOKEN      a JSON Web Token instead of user and password (--token)
  PLONE_ZOPE_CONF  work in-process with this zope.conf (--zope-conf)"""


class Where(NamedTuple):
    """Where the in-process door works: a ``zope.conf``, and its choice of sites."""

    zope_conf: str
    site_id: str | None
    all_sites: bool


def door_options(envvar=None):
    """``--zope-conf``, ``--site``, ``--all-sites``: before or after the command."""
    return [
        option(
            "--zope-conf",
            type=click.Path(exists=True, dir_okay=False),
            envvar=envvar,
            show_envvar=envvar is not None,
            metavar="PATH",
            help="Work in-process: open the database of this Zope configuration.",
        ),
        option("--site", "site_id", metavar="ID", help="With --zope-conf: this site."),
        option("--all-sites", is_flag=True, help="With --zope-conf: every Plone site."),
    ]


def with_options(*options):
    """A decorator adding ``options`` (click decorators), shown in this order."""
    return lambda f: functools.reduce(lambda f, add: add(f), reversed(options), f)


def first_wins(first, second, message):
    """Of two options that exclude each other, whether the first is kept:
    the command line beats the environment; both from one place: an error."""
    if first == COMMANDLINE != second:
        return True
    if second == COMMANDLINE != first:
        return False
    raise click.UsageError(message)


CONNECTION = [
    option(
        "--url",
        envvar="PLONE_URL",
        show_envvar=True,
        metavar="URL",
        help="The site's URL: http://localhost:8080/Plone",
    ),
    option(
        "--user",
        "-u",
        envvar="PLONE_USER",
        show_envvar=True,
        metavar="NAME",
        help="Basic authentication as this user (password: PLONE_PASSWORD or "
        "asked for). With --zope-conf: the user the history records.",
    ),
    option(
        "--token",
        envvar="PLONE_TOKEN",
        show_envvar=True,
        metavar="JWT",
        help="Authenticate with this JSON Web Token.",
    ),
    option("--login", is_flag=True, help="Trade user and password for a token first."),
    *door_options(),
]
JSON = option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def command(
    *own,
    timeout=60.0,
    timeout_help="Seconds to wait for the answer (0: no limit).",
    validate=None,
    in_process=True,
):
    """Make ``f(door, out, **options)`` a command of :func:`cli`, with its
    ``own`` options (click decorators), then the connection and door options,
    ``--timeout`` and ``--json``.

    :param validate: checks the command's own options before anything connects.
    :param in_process: whether the command works with ``--zope-conf``.
    """

    def decorator(f):
        @functools.wraps(f)
        def wrapper(url, user, token, login, timeout, as_json, **options):
            ctx = click.get_current_context()
            url, where = choose(ctx, url, options, in_process)
            if validate is not None:
                validate(**options)
            if where is not None:
                ctx.exit(in_process_door()(f, where, user, as_json, options))
            out = Output(as_json)
            http = (url, user, token, login, timeout, options)
            ctx.exit(out.guard(over_http, ctx, f, out, *http))

        timeout_option = option(
            "--timeout",
            type=click.FloatRange(min=0),
            default=timeout,
            show_default=True,
            metavar="SECONDS",
            help=timeout_help,
        )
        options = with_options(*own, *CONNECTION, timeout_option, JSON)
        return cli.command(epilog=EXIT_CODES)(options(wrapper))

    return decorator


def choose(ctx, url, options, in_process):
    """``(url, where)``: the site's URL, or where the in-process door works;
    the command's door options (taken out of ``options``) over the group's.
    A :class:`click.UsageError` if options contradict each other."""
    group = ctx.parent.params
    zope_conf, site_id = options.pop("zope_conf"), options.pop("site_id")
    all_sites = options.pop("all_sites")
    source = COMMANDLINE if zope_conf else ctx.parent.get_parameter_source("zope_conf")
    zope_conf = zope_conf or group["zope_conf"]
    if not (site_id or all_sites):
        site_id, all_sites = group["site_id"], group["all_sites"]
    if url and zope_conf:
        message = "Give either --url or --zope-conf, not both."
        if first_wins(ctx.get_parameter_source("url"), source, message):
            zope_conf = None
        else:
            url = None
    if not url and not zope_conf:
        raise click.UsageError(
            "Missing option '--url' (PLONE_URL): the site's URL. Or work "
            "in-process with --zope-conf PATH."
        )
    if site_id and all_sites:
        raise click.UsageError("Give either --site or --all-sites, not both.")
    if zope_conf is None and (site_id or all_sites):
        raise click.UsageError(
            "--site and --all-sites need --zope-conf; over HTTP, --url names the site."
        )
    if zope_conf is None:
        return url, None
    _check_in_process(ctx, in_process)
    return None, Where(zope_conf, site_id, all_sites)


def _check_in_process(ctx, in_process):
    """Only a command that may, without an option that means HTTP."""
    if not in_process:
        raise click.UsageError(
            f"`{ctx.info_name}` has no meaning with --zope-conf: the command opens "
            "the database itself, there is no server to wait for."
        )
    for name in ("token", "login", "timeout"):
        if ctx.get_parameter_source(name) == COMMANDLINE:
            raise click.UsageError(
                f"--{name} has no meaning with --zope-conf: nothing goes over HTTP."
            )


def in_process_door():
    """The in-process door's ``run`` function (see :data:`IN_PROCESS`)."""
    group, name = IN_PROCESS
    for entry_point in entry_points(group=group, name=name):
        return entry_point.load()
    raise click.UsageError(
        "--zope-conf works in the Python environment of the Zope instance, "
        "where collective.upgradeapi is installed; it is not installed here."
    )


def over_http(ctx, f, out, url, user, token, login, timeout, options):
    """Run the command ``f`` on a :class:`.http.Client`; return the exit code."""
    if user and token and not login:
        sources = map(ctx.get_parameter_source, ("user", "token"))
        if first_wins(*sources, "Give either --user or --token, not both."):
            token = None
        else:
            user = None
    if login and not user:
        raise click.UsageError("--login needs --user (or PLONE_USER).")
    auth = ("token", token) if token and not login else None
    if user and not login:
        auth = ("basic", user, password(user))
    login_with = (user, password(user)) if login else None
    client = Client(url, auth, timeout or None, login_with)
    with client.session:
        return f(client, out, **options)


def password(user):
    """``PLONE_PASSWORD``, or asked for on a terminal."""
    if os.environ.get("PLONE_PASSWORD") is not None:
        return os.environ["PLONE_PASSWORD"]
    if not sys.stdin.isatty():
        raise Failure(
            f"No password for user {user!r}: set PLONE_PASSWORD (there is no "
            "terminal to ask on).",
            error_type="NoPassword",
        )
    return click.prompt(f"Password for {user}", hide_input=True, err=True)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 88},
    epilog=f"{EXIT_CODES}\n\n{ENVIRONMENT}",
)
@click.version_option(
    package_name="collective.upgradeapi.client", prog_name="plone-upgrade"
)
@with_options(*door_options(envvar="PLONE_ZOPE_CONF"))
def cli(**door):
    """See and run the upgrades of a Plone site, over HTTP or in-process.

    Over HTTP (--url), talks to the @upgrade services of collective.upgradeapi
    as a user with the 'Manage portal' permission. With --zope-conf, every
    command but wait opens the site's database in this process instead.

    \b
    In CI, after the new image has started:
      plone-upgrade wait
      plone-upgrade check || plone-upgrade run --all --dry-run
      plone-upgrade run --all
    """


def main(args=None):
    """The console script: an unexpected exception exits with 2 (not Python's
    1, which means "upgrades pending" or "a step failed")."""
    try:
        return cli.main(args=args, prog_name="plone-upgrade")
    except Exception:
        traceback.print_exc()
        sys.exit(ERROR)
