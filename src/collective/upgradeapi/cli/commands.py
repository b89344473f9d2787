"""The ``plone-upgrade`` commands: wait, check, plan, run, history."""

from click.core import ParameterSource
from collective.upgradeapi.cli import output
from collective.upgradeapi.cli.client import Client
from collective.upgradeapi.cli.client import FAILED
from collective.upgradeapi.cli.client import Failure
from collective.upgradeapi.cli.client import OK
from collective.upgradeapi.cli.client import StatusWatcher

import click
import functools
import json
import os
import sys
import time


EXIT_CODES = """\b
Exit codes:
  0  success; for `check`: the site is up to date
  1  `check`: upgrades are pending; `run`: a step failed (HTTP 500
     UpgradeFailed), nothing was committed
  2  usage error, connection refused, timeout, HTTP 400, 401, 403, 404,
     409 or any other error; the message is on stderr"""

ENVIRONMENT = """\b
Environment:
  PLONE_URL       the site's URL (--url)
  PLONE_USER      user for basic authentication (--user)
  PLONE_PASSWORD  that user's password; asked for on a terminal otherwise
  PLONE_TOKEN     a JSON Web Token instead of user and password (--token)"""


class Output:
    """Where a command writes: text for people, or one JSON document.

    Text goes to stdout unless ``--json`` is given; then stdout gets only the
    JSON document. Progress and error messages always go to stderr.
    """

    def __init__(self, as_json):
        self.as_json = as_json

    def line(self, text=""):
        if not self.as_json:
            click.echo(text)

    def lines(self, lines):
        for text in lines:
            self.line(text)

    def note(self, text):
        click.echo(text, err=True)

    def document(self, document):
        if self.as_json:
            click.echo(json.dumps(document, indent=2, ensure_ascii=False))

    def fail(self, failure):
        self.note(f"Error: {failure.message}")
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


def command(timeout, timeout_help, validate=None):
    """Add the connection options and ``--json`` to a command.

    The command is called as ``f(client, out, **its_own_options)`` and
    returns an exit code; a :class:`Failure` ends it with its message.

    :param timeout: the default of ``--timeout``, in seconds.
    :param validate: called with the command's own options before anything
        connects; raises :class:`click.UsageError`.
    """

    def decorator(f):
        @functools.wraps(f)
        def wrapper(url, user, token, login, timeout, as_json, **options):
            ctx = click.get_current_context()
            if validate is not None:
                validate(**options)
            credentials = _credentials(ctx, user, token, login)
            out = Output(as_json)
            try:
                client = _connect(credentials, url, timeout)
                try:
                    code = f(client, out, **options)
                finally:
                    client.close()
            except Failure as failure:
                out.fail(failure)
                code = failure.exit_code
            ctx.exit(code)

        decorators = [
            click.option(
                "--url",
                envvar="PLONE_URL",
                show_envvar=True,
                required=True,
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
                "PLONE_PASSWORD or is asked for on the terminal.",
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
        for decorator in reversed(decorators):
            wrapper = decorator(wrapper)
        return wrapper

    return decorator


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 88},
    epilog=f"{EXIT_CODES}\n\n{ENVIRONMENT}",
)
@click.version_option(package_name="collective.upgradeapi", prog_name="plone-upgrade")
def cli():
    """See and run the upgrades of a Plone site over HTTP.

    Talks to the @upgrade REST services of collective.upgradeapi: Plone core
    and every add-on profile, true dry runs, all-or-nothing runs. Every call
    needs a user with the 'Manage portal' permission on the site.

    \b
    In CI, after the new image has started:
      plone-upgrade wait
      plone-upgrade check || plone-upgrade run --all --dry-run
      plone-upgrade run --all

    `plone-upgrade COMMAND --help` describes each command.
    """


def _pending(info):
    profiles = [p for p in info.get("profiles", []) if output.pending_steps(p)]
    steps = sum(len(output.pending_steps(p)) for p in profiles)
    return profiles, steps


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


@cli.command(epilog=EXIT_CODES)
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
)
def wait(client, out, interval):
    """Wait until the site answers GET @upgrade.

    For containers that start slowly: tries again while the connection is
    refused, times out, or the answer is 404 or 502-504 (the site is not
    there yet, a proxy has no backend yet). Fails at once on 401 and 403,
    and when the site answers without collective.upgradeapi.

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
                    f"({_plural(attempts, 'attempt')}); last: {failure.message}",
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


@cli.command(epilog=EXIT_CODES)
@command(timeout=60.0, timeout_help="Seconds to wait for the answer (0: no limit).")
def check(client, out):
    """Tell whether the site needs upgrading: exit 0 if not, 1 if it does.

    Asks GET @upgrade. Counts the pending steps of every installed profile:
    Plone core, its core add-ons and third-party add-ons. With --json, prints
    the answer of GET @upgrade.

    Exit 0 when the site is up to date, 1 when upgrades are pending, 2 on
    an error.
    """
    info = client.upgrade_info()
    out.document(info)
    profiles, steps = _pending(info)
    downgraded = [p["id"] for p in info.get("profiles", []) if p.get("downgraded")]
    for profile_id in downgraded:
        out.note(
            f"Warning: {profile_id}: the database records a newer version than "
            "the code; was the code downgraded?"
        )
    if info.get("needs_upgrade"):
        out.line(
            f"Upgrades pending on {client.url}: {_plural(steps, 'step')} in "
            f"{_plural(len(profiles), 'profile')}."
        )
        out.lines(output.summary(info))
        out.line(
            "`plone-upgrade plan` lists the steps; `plone-upgrade run --all` runs them."
        )
        return FAILED
    core = info.get("versions", {})
    out.line(
        f"{client.url} is up to date (Plone profile version {core.get('instance')})."
    )
    return OK


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--profile",
    metavar="ID",
    help="Only this profile, e.g. Products.CMFPlone:plone (GET @upgrade?profile=ID).",
)
@command(timeout=60.0, timeout_help="Seconds to wait for the answer (0: no limit).")
def plan(client, out, profile):
    """List the pending upgrade steps, profile by profile, in run order.

    Shows each step's id (for `run --step`), its versions, whether
    GenericSetup proposes it, and its title. With --json, prints the answer of
    GET @upgrade.

    Exit 0 when the plan was shown (pending steps or not), 2 on an error.
    """
    info = client.upgrade_info(profile=profile)
    out.document(info)
    shown = [
        p
        for p in info.get("profiles", [])
        if output.pending_steps(p) or p.get("downgraded")
    ]
    if not shown:
        what = f"profile {profile}" if profile else client.url
        out.line(f"Nothing to upgrade: {what} is up to date.")
        return OK
    out.lines(output.plan({"profiles": shown}))
    profiles, steps = _pending({"profiles": shown})
    if steps:
        out.line()
        out.line(
            f"{_plural(steps, 'pending step')} in {_plural(len(profiles), 'profile')}."
        )
    return OK


def _validate_run(profiles, all_profiles, steps, **ignored):
    if all_profiles and profiles:
        raise click.UsageError("Give either --all or --profile, not both.")
    if steps and (profiles or all_profiles):
        raise click.UsageError("Give either --step or --profile/--all, not both.")


def _run_body(dry_run, profiles, all_profiles, steps):
    body = {"dry_run": dry_run}
    if all_profiles:
        body["profiles"] = "all"
    elif profiles:
        body["profiles"] = list(profiles)
    if steps:
        body["steps"] = list(steps)
    return body


def _selection_text(body):
    if "steps" in body:
        return _plural(len(body["steps"]), "chosen step")
    if body.get("profiles") == "all":
        return "every profile with pending steps"
    if "profiles" in body:
        return ", ".join(body["profiles"])
    return "Plone's core upgrade"


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run every step, then roll everything back; nothing is written.",
)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="ID",
    help="Upgrade this profile (repeatable), in the site's run order.",
)
@click.option(
    "--all",
    "all_profiles",
    is_flag=True,
    help="Upgrade every installed profile with pending steps, core first.",
)
@click.option(
    "--step",
    "steps",
    multiple=True,
    metavar="ID",
    help="Run this step only (repeatable; ids from `plan`).",
)
@click.option(
    "--report",
    is_flag=True,
    help="Also print the full report of a successful run.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show the current step on stderr while the run goes on (when the "
    "server offers GET @upgrade/status).",
)
@click.option(
    "--status-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Pause between two polls of GET @upgrade/status.",
)
@command(
    timeout=0.0,
    timeout_help="Give up waiting for the answer after this many seconds (0: no "
    "limit); the server finishes the run anyway.",
    validate=_validate_run,
)
def run(
    client,
    out,
    dry_run,
    profiles,
    all_profiles,
    steps,
    report,
    progress,
    status_interval,
):
    """Run the pending upgrades (POST @upgrade), all or nothing.

    Without --profile, --all or --step: Plone's core upgrade, exactly as
    Plone's own upgrade view runs it. If a step fails, nothing of the run is
    committed: the failed step, its error and the report are printed, and
    the exit code is 1. A dry run runs every step and commits nothing.

    Before running, checks that the site answers with collective.upgradeapi
    (GET @upgrade), so that no other @upgrade service runs by mistake.

    Exit 0 when the run succeeded, 1 when a step failed, 2 on any other
    error (bad input: HTTP 400; another run going on: HTTP 409).
    """
    body = _run_body(dry_run, profiles, all_profiles, steps)
    client.upgrade_info(timeout=client.timeout or 60.0)
    kind = "Dry run" if dry_run else "Upgrade"
    out.note(f"{kind} of {client.url}: {_selection_text(body)}...")
    watcher = None
    if progress:
        watcher = StatusWatcher(
            client,
            lambda status: out.note(f"  {output.progress(status)}"),
            interval=status_interval,
        )
        watcher.start()
    try:
        status, document = client.run_upgrade(body)
    except Failure as failure:
        if failure.document.get("type") == "Timeout":
            failure.message += (
                " The run may still be going on at the server: `plone-upgrade "
                "check` tells later whether the site is up to date."
            )
        raise
    finally:
        if watcher is not None:
            watcher.stop()
    out.document(document)
    results = document.get("steps", [])
    if status == 200 and not results:
        out.line("Nothing to upgrade: no pending steps in this selection.")
        return OK
    out.lines(output.step_results(results))
    touched = {step.get("profile") for step in results}
    profiles = [
        profile
        for profile in document.get("profiles", [])
        if profile.get("id") in touched
        or profile.get("versions", {}).get("before")
        != profile.get("versions", {}).get("after")
    ]
    if profiles:
        out.line()
        out.lines(output.profile_results(profiles))
    out.line()
    done = sum(1 for step in results if step.get("status") == "done")
    duration = document.get("duration")
    took = f" in {duration:.1f} s" if isinstance(duration, (int, float)) else ""
    if status == 200:
        if dry_run:
            out.line(
                f"Dry run finished{took}: {_plural(done, 'step')} ran; nothing "
                "was committed."
            )
        else:
            out.line(f"Upgrade finished{took}: {_plural(done, 'step')} committed.")
        if report:
            out.line()
            out.line("Report:")
            out.line(document.get("report", "").rstrip())
        return OK
    failed = document.get("failed_step") or {}
    error = failed.get("error") or {}
    out.line(
        f"Failed step: {failed.get('title')!r} (profile {failed.get('profile')}, "
        f"id {failed.get('id')})"
    )
    out.line(f"Error: {error.get('type', 'Error')}: {error.get('message', '')}")
    if error.get("traceback"):
        out.line(error["traceback"].rstrip())
    out.line()
    out.line("Report:")
    out.line((document.get("report") or "").rstrip())
    out.line()
    out.line(f"{kind} failed; nothing was committed.")
    out.note(f"Error: {document.get('message')}")
    return FAILED


@cli.command(epilog=EXIT_CODES)
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
def history(client, out, run_id, limit, report):
    """Show the upgrade runs the site remembers (GET @upgrade/history).

    Who ran what and when, dry run or not, the result, the duration and the
    steps done. With RUN_ID, one run in full: its steps and its error (and
    with --report, its report). With --json, prints the server's answer.

    A server without the history service answers 404: "this server has no
    upgrade history", exit 2.

    Exit 0 when the history was shown, 2 on an error.
    """
    document = client.history(run_id=run_id, limit=limit)
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


def main(args=None):
    """The ``plone-upgrade`` console script."""
    return cli.main(args=args, prog_name="plone-upgrade")
