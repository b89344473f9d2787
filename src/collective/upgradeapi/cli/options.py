"""What every command shares: its options, its output, its credentials.

:func:`command` turns a function ``f(door, out, **options)`` into a command
with the connection options and ``--json``; ``door`` is the site the command
works on: a :class:`.client.Client` over HTTP (``--url``), or with
``--zope-conf`` a site opened in this process (:mod:`.inprocess`, imported
only then: over HTTP nothing imports Zope).
"""

from click.core import ParameterSource
from collective.upgradeapi.cli import doors
from collective.upgradeapi.cli.client import Client
from collective.upgradeapi.cli.failure import Failure

import click
import functools
import json
import os
import sys


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


def _over_http(f, ctx, out, url, user, token, login, timeout, options):
    """Run ``f`` on a :class:`.client.Client`; return the exit code."""
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
    returns an exit code; a :class:`.failure.Failure` ends it with its
    message.

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
            out = Output(as_json)
            if where.zope_conf is None:
                code = _over_http(
                    f, ctx, out, url, user, token, login, timeout, options
                )
            else:
                from collective.upgradeapi.cli import inprocess

                code = inprocess.run(f, where, user, as_json, options)
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
