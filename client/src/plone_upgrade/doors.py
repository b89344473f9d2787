"""Which door a command goes through: HTTP (``--url``) or in-process.

``--zope-conf PATH`` opens the Zope database of that configuration in this
process and works on its Plone sites directly: ``--site ID`` picks one,
``--all-sites`` takes them all. These options may come before the command
(``plone-upgrade --zope-conf PATH check``) or after it (``plone-upgrade check
--zope-conf PATH``); after it wins.

The in-process door comes with the server package, collective.upgradeapi:
it registers the entry point :data:`IN_PROCESS`, a function ``run(f, where,
user, as_json, options)`` that runs the command ``f`` on the chosen sites
and returns the exit code.
"""

from click.core import ParameterSource
from dataclasses import dataclass
from importlib.metadata import entry_points
from plone_upgrade.door import Failure
from plone_upgrade.http import Client

import click
import os
import sys


COMMANDLINE = ParameterSource.COMMANDLINE
#: The entry point group and name of the in-process door.
IN_PROCESS = ("plone_upgrade.doors", "zope_conf")
#: Options that only mean something over HTTP.
HTTP_ONLY = ("token", "login", "timeout")


def _options(envvar=None):
    return [
        click.option(
            "--zope-conf",
            "zope_conf",
            type=click.Path(exists=True, dir_okay=False),
            envvar=envvar,
            show_envvar=envvar is not None,
            metavar="PATH",
            help="Work in-process instead of over HTTP: open the database of "
            "this Zope configuration (e.g. /app/etc/zope.conf) here.",
        ),
        click.option(
            "--site",
            "site_id",
            metavar="ID",
            help="With --zope-conf: the id of the Plone site at the Zope root "
            "(default: the only one).",
        ),
        click.option(
            "--all-sites",
            is_flag=True,
            help="With --zope-conf: every Plone site at the Zope root, one after "
            "the other; the exit code is the worst of all.",
        ),
    ]


#: The options of the command group, before the command.
GROUP_OPTIONS = _options(envvar="PLONE_ZOPE_CONF")
#: The same options, after the command.
OPTIONS = _options()


@dataclass
class Where:
    """The door chosen: ``zope_conf`` is ``None`` over HTTP."""

    zope_conf: str | None = None
    site_id: str | None = None
    all_sites: bool = False
    #: How ``zope_conf`` was given (a :class:`click.core.ParameterSource`).
    source: object = None


def remember(ctx, zope_conf, site_id, all_sites):
    """Keep the group's door options for the command (``ctx.obj``)."""
    ctx.obj = Where(
        zope_conf, site_id, all_sites, ctx.get_parameter_source("zope_conf")
    )


def _merged(ctx, options):
    """The door options of the command, over those of the group."""
    before = ctx.find_object(Where) or Where()
    zope_conf = options.pop("zope_conf")
    site_id = options.pop("site_id")
    all_sites = options.pop("all_sites")
    where = Where(before.zope_conf, before.site_id, before.all_sites, before.source)
    if zope_conf:
        where.zope_conf, where.source = zope_conf, COMMANDLINE
    if site_id or all_sites:
        where.site_id, where.all_sites = site_id, all_sites
    return where


def choose(ctx, url, options, in_process):
    """Check the door options; take them out of ``options``.

    :param url: the ``--url`` given (or from ``PLONE_URL``).
    :param in_process: whether the command works with ``--zope-conf``.
    :returns: a :class:`Where`.
    :raises click.UsageError: the options contradict each other.
    """
    where = _merged(ctx, options)
    _url_or_zope_conf(ctx, url, where)
    if where.site_id and where.all_sites:
        raise click.UsageError("Give either --site or --all-sites, not both.")
    if where.zope_conf is None:
        if where.site_id or where.all_sites:
            raise click.UsageError(
                "--site and --all-sites need --zope-conf; over HTTP, --url names "
                "the site."
            )
        return where
    _check_in_process(ctx, in_process)
    return where


def _url_or_zope_conf(ctx, url, where):
    """One door: the command line wins over the environment; both: an error."""
    if url and where.zope_conf:
        from_url = ctx.get_parameter_source("url")
        if where.source == COMMANDLINE != from_url:
            url = None
        elif from_url == COMMANDLINE != where.source:
            where.zope_conf = None
        else:
            raise click.UsageError("Give either --url or --zope-conf, not both.")
    if not url and not where.zope_conf:
        raise click.UsageError(
            "Missing option '--url' (PLONE_URL): the site's URL. Or work "
            "in-process with --zope-conf PATH."
        )
    return url


def _check_in_process(ctx, in_process):
    name = ctx.info_name
    if not in_process:
        raise click.UsageError(
            f"`{name}` has no meaning with --zope-conf: the command opens the "
            "database itself, there is no server to wait for."
        )
    for option in HTTP_ONLY:
        if ctx.get_parameter_source(option) == COMMANDLINE:
            raise click.UsageError(
                f"--{option} has no meaning with --zope-conf: nothing goes over HTTP."
            )


def in_process():
    """The in-process door's ``run`` function (see :data:`IN_PROCESS`).

    :raises click.UsageError: collective.upgradeapi is not installed here.
    """
    group, name = IN_PROCESS
    for entry_point in entry_points(group=group, name=name):
        return entry_point.load()
    raise click.UsageError(
        "--zope-conf works in the Python environment of the Zope instance, "
        "where collective.upgradeapi is installed; it is not installed here."
    )


def _password(user):
    password = os.environ.get("PLONE_PASSWORD")
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise Failure(
            f"No password for user {user!r}: set PLONE_PASSWORD (there is no "
            "terminal to ask on).",
            error_type="NoPassword",
        )
    return click.prompt(f"Password for {user}", hide_input=True, err=True)


def _credentials(ctx, user, token, login):
    """Choose basic auth or a token; a command-line option beats the environment."""
    if user and token and not login:
        from_user = ctx.get_parameter_source("user")
        from_token = ctx.get_parameter_source("token")
        if from_token == ParameterSource.COMMANDLINE != from_user:
            user = None
        elif from_user == ParameterSource.COMMANDLINE != from_token:
            token = None
        else:
            raise click.UsageError("Give either --user or --token, not both.")
    if login:
        if not user:
            raise click.UsageError("--login needs --user (or PLONE_USER).")
        return ("login", user)
    if token:
        return ("token", token)
    if user:
        return ("basic", user)
    return None


def _connect(credentials, url, timeout):
    timeout = timeout or None
    if credentials is None:
        return Client(url, timeout=timeout)
    if credentials[0] == "token":
        return Client(url, auth=credentials, timeout=timeout)
    user = credentials[1]
    password = _password(user)
    if credentials[0] == "basic":
        return Client(url, auth=("basic", user, password), timeout=timeout)
    client = Client(url, timeout=timeout)
    client.login_with = (user, password)
    return client


def over_http(f, ctx, out, http, options):
    """Run the command ``f`` on a :class:`.http.Client`; return the exit code.

    :param http: the options ``(url, user, token, login, timeout)``.
    """
    url, user, token, login, timeout = http
    credentials = _credentials(ctx, user, token, login)
    try:
        client = _connect(credentials, url, timeout)
        try:
            return f(client, out, **options)
        finally:
            client.close()
    except Failure as failure:
        out.fail(failure)
        return failure.exit_code
