"""``plone-upgrade wait``: until the site answers (over HTTP only)."""

from collective.upgradeapi.cli.failure import Failure
from collective.upgradeapi.cli.failure import OK
from collective.upgradeapi.cli.options import command
from collective.upgradeapi.cli.options import EXIT_CODES
from collective.upgradeapi.cli.options import plural

import click
import time


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
