"""``plone-upgrade unlock`` and ``cancel``: a lock left by a dead run, a run
to stop.

Over HTTP: ``DELETE @upgrade/lock[?force=true]`` and ``DELETE @upgrade/run``
(``GET @upgrade/lock`` first, to tell "no lock" from "no such service").
In-process: :func:`collective.upgradeapi.api.break_lock` and
:func:`~collective.upgradeapi.api.cancel`, imported only then.
"""

from collective.upgradeapi.cli.client import Client
from collective.upgradeapi.cli.failure import Failure
from collective.upgradeapi.cli.failure import OK
from collective.upgradeapi.cli.options import command
from collective.upgradeapi.cli.options import EXIT_CODES

import click
import time


NO_SERVICE = (
    "This server has no upgrade lock service (HTTP 404 from {url}): the "
    "collective.upgradeapi installed there is older, or the URL is not a "
    "Plone site."
)
#: Seconds between two looks at the lock while waiting for a run to stop.
POLL = 0.5


def _over_http(door):
    return isinstance(door, Client)


def _engine_call(door, call, *args, **kwargs):
    """Call an engine API function on the in-process door's site."""
    from collective.upgradeapi.cli.sitedoor import refusal
    from collective.upgradeapi.errors import UnknownResource
    from collective.upgradeapi.errors import UpgradeError

    try:
        return call(door.site, door.user, *args, **kwargs)
    except UnknownResource:
        return None
    except UpgradeError as error:
        raise refusal(error)


def read_lock(door):
    """The site's lock as ``GET @upgrade/lock`` shows it, or ``None``."""
    if _over_http(door):
        response = door.send("GET", "@upgrade/lock")
        body = door.json(response, not_found=NO_SERVICE.format(url=response.url))
        return body.get("lock")
    from collective.upgradeapi import api

    import transaction

    transaction.abort()
    transaction.begin()  # the newest committed state
    return api.lock_info(door.site)


def _delete(door, path, **params):
    """``DELETE @upgrade/<path>``: the answer, or ``None`` for a 404."""
    response = door.send("DELETE", f"@upgrade/{path}", params=params or None)
    if response.status_code == 404:
        return None
    if response.status_code not in (200, 202):
        raise door.failure(response)
    return response.json()


def break_lock(door, force):
    """What ``DELETE @upgrade/lock`` answers, or ``None`` without a lock."""
    if _over_http(door):
        if read_lock(door) is None:
            return None
        return _delete(door, "lock", **({"force": "true"} if force else {}))
    from collective.upgradeapi import api

    done = _engine_call(door, api.break_lock, force=force)
    return None if done is None else {"@id": f"{door.service_url}/lock", **done}


def cancel_run(door):
    """What ``DELETE @upgrade/run`` answers, or ``None`` without a run."""
    if _over_http(door):
        if read_lock(door) is None:
            return None
        return _delete(door, "run")
    from collective.upgradeapi import api

    done = _engine_call(door, api.cancel)
    if done is None:
        return None
    return {
        "@id": f"{door.service_url}/run",
        "cancel_requested": done["lock"]["cancel_requested"],
        **done,
    }


def describe(lock):
    """The lock in words, one line."""
    holder = lock.get("holder") or {}
    where = (
        f"process {holder.get('pid')} on {holder.get('host')}"
        if holder
        else "an unknown process"
    )
    state = lock.get("state") or ("stale" if lock.get("stale") else "alive")
    reason = {"process_gone": "its process is gone", "no_heartbeat": "no heartbeat"}
    if state == "stale" and lock.get("stale_reason") in reason:
        state = f"stale ({reason[lock['stale_reason']]})"
    what = "dry run" if lock.get("dry_run") else "upgrade"
    run = f" (run {lock['run_id']})" if lock.get("run_id") else ""
    return (
        f"{what.capitalize()}{run} by {lock.get('user')} since {lock.get('since')}, "
        f"{where}, last heartbeat {lock.get('heartbeat')}: {state}."
    )


def wait_until_released(door, out, seconds):
    """Wait at most ``seconds`` for the lock to go; raise a Failure if not."""
    out.note(f"Waiting up to {seconds:g} s for the run to stop...")
    deadline = time.monotonic() + seconds
    while True:
        if read_lock(door) is None:
            out.line("The run stopped; the lock is free.")
            return
        if time.monotonic() >= deadline:
            raise Failure(
                f"The run still holds the lock after {seconds:g} s: it is inside "
                "a long step, or its process froze. `plone-upgrade unlock` tells "
                "whether it looks alive.",
                error_type="Timeout",
            )
        time.sleep(POLL)


WAIT_OPTION = click.option(
    "--wait",
    "wait_for",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="Then wait up to SECONDS for the run to stop and release the lock "
    "(0: do not wait).",
)


@click.command(epilog=EXIT_CODES)
@click.option(
    "--force",
    is_flag=True,
    help="When the lock is alive: ask its run to cancel (a live lock is never "
    "broken; the run stops at its next step and releases it).",
)
@WAIT_OPTION
@command(timeout=60.0, timeout_help="Seconds to wait for each answer (0: no limit).")
def unlock(door, out, force, wait_for):
    """Break the upgrade lock of a run that died (DELETE @upgrade/lock).

    A lock is stale when its process is gone (on the same host: at once) or
    gave no heartbeat for a while (on another host); then it is broken and
    its run is recorded as abandoned. A live lock is refused (exit 2): its run
    could still commit, and another run would overlap it. With --force, its
    run is asked to cancel instead, as `plone-upgrade cancel` does.

    Exit 0 when the lock was broken, there was none, or (--force) its run was
    asked to cancel; 2 on an error, a live lock without --force, or when
    --wait ran out.
    """
    done = break_lock(door, force)
    if done is None:
        out.document({"lock": None, "broken": False, "message": "No upgrade lock."})
        out.line("There is no upgrade lock: nothing to break.")
        return OK
    out.document(done)
    out.line(describe(done["lock"]))
    out.line(done["message"])
    if not done["broken"] and wait_for:
        wait_until_released(door, out, wait_for)
    return OK


@click.command(epilog=EXIT_CODES)
@WAIT_OPTION
@command(timeout=60.0, timeout_help="Seconds to wait for each answer (0: no limit).")
def cancel(door, out, wait_for):
    """Cancel the running upgrade (DELETE @upgrade/run).

    The run stops at its next step boundary (before its next step, or before
    it commits), rolls back what it had not committed, is recorded as
    cancelled by you, and releases the lock. The step running now is not
    interrupted.

    Exit 0 when the run was asked to cancel (with --wait: and stopped), or no
    run was going on; 2 on an error or when --wait ran out.
    """
    done = cancel_run(door)
    if done is None:
        out.document({"lock": None, "message": "No upgrade is running."})
        out.line("No upgrade is running: nothing to cancel.")
        return OK
    out.document(done)
    out.line(describe(done["lock"]))
    out.line(done["message"])
    if wait_for:
        wait_until_released(door, out, wait_for)
    return OK
