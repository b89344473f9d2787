"""What every command shares: its options and its output.

:func:`command` turns a function ``f(door, out, **options)`` into a command
with the connection options and ``--json``; ``door`` is the
:class:`.door.Door` of the site the command works on (see :mod:`.doors`).
"""

from plone_upgrade import doors

import click
import functools
import json


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


class Output:
    """Where a command writes: text for people, or one JSON document.

    Text goes to stdout unless ``--json`` is given; then stdout gets only the
    JSON document. Progress and error messages always go to stderr.

    :param sink: called with the JSON document instead of printing it
        (``--all-sites`` prints one document for all sites).
    :param label: put before error messages (the site, with ``--all-sites``).
    """

    def __init__(self, as_json, sink=None, label=None):
        self.as_json = as_json
        self.sink = sink
        self.label = label

    def line(self, text=""):
        if not self.as_json:
            click.echo(text)

    def lines(self, lines):
        for text in lines:
            self.line(text)

    def note(self, text):
        click.echo(text, err=True)

    def document(self, document):
        if self.sink is not None:
            self.sink(document)
        elif self.as_json:
            click.echo(json.dumps(document, indent=2, ensure_ascii=False))

    def fail(self, failure):
        where = f"{self.label}: " if self.label else ""
        self.note(f"Error: {where}{failure.message}")
        self.document(failure.document)


CONNECTION_OPTIONS = [
    click.option(
        "--url",
        envvar="PLONE_URL",
        show_envvar=True,
        metavar="URL",
        help="The Plone site's URL, e.g. http://localhost:8080/Plone.",
    ),
    click.option(
        "--user",
        "-u",
        envvar="PLONE_USER",
        show_envvar=True,
        metavar="NAME",
        help="Basic authentication as this user; the password comes from "
        "PLONE_PASSWORD or is asked for on the terminal. With --zope-conf: the "
        "user the history records (default: the operating system's user).",
    ),
    click.option(
        "--token",
        envvar="PLONE_TOKEN",
        show_envvar=True,
        metavar="JWT",
        help="Authenticate with this JSON Web Token instead.",
    ),
    click.option(
        "--login",
        is_flag=True,
        help="Trade user and password for a token first (POST @login) "
        "and send only the token.",
    ),
]


def command(timeout, timeout_help, validate=None, in_process=True):
    """Add the connection options and ``--json`` to a command.

    The command is called as ``f(door, out, **its_own_options)`` and
    returns an exit code; a :class:`.door.Failure` ends it with its message.

    :param timeout: the default of ``--timeout``, in seconds.
    :param validate: called with the command's own options before anything
        connects; raises :class:`click.UsageError`.
    :param in_process: whether the command works with ``--zope-conf``.
    """

    def decorator(f):
        @functools.wraps(f)
        def wrapper(url, user, token, login, timeout, as_json, **options):
            ctx = click.get_current_context()
            where = doors.choose(ctx, url, options, in_process)
            if validate is not None:
                validate(**options)
            if where.zope_conf is None:
                http = (url, user, token, login, timeout)
                code = doors.over_http(f, ctx, Output(as_json), http, options)
            else:
                code = doors.in_process()(f, where, user, as_json, options)
            ctx.exit(code)

        decorators = [
            *CONNECTION_OPTIONS,
            *doors.OPTIONS,
            click.option(
                "--timeout",
                type=click.FloatRange(min=0),
                default=timeout,
                show_default=True,
                metavar="SECONDS",
                help=timeout_help,
            ),
            click.option(
                "--json",
                "as_json",
                is_flag=True,
                help="Print one JSON document on stdout (the server's answer, or "
                "the error) and nothing else.",
            ),
        ]
        for option in reversed(decorators):
            wrapper = option(wrapper)
        return wrapper

    return decorator


def plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"
