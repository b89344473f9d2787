"""``plone-upgrade unlock`` and ``cancel``: a lock left by a dead run, a run
to stop (``DELETE @upgrade/lock[?force=true]``, ``DELETE @upgrade/run``)."""

from plone_upgrade.door import Failure
from plone_upgrade.door import OK
from plone_upgrade.options import command
from plone_upgrade.options import EXIT_CODES

import click
import time


#: Seconds between two looks at the lock while waiting for a run to stop.
POLL = 0.5


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


def _answered(door, out, done, wait_for):
    """Show the answer of ``unlock`` or ``cancel``, then wait for the run to
    stop if ``wait_for`` seconds are given."""
    out.document(done)
    out.line(describe(done["lock"]))
    out.line(done["message"])
    if wait_for:
        wait_until_released(door, out, wait_for)
    return OK


def wait_until_released(door, out, seconds):
    """Wait at most ``seconds`` for the lock to go; raise a Failure if not."""
    out.note(f"Waiting up to {seconds:g} s for the run to stop...")
    deadline = time.monotonic() + seconds
    while True:
        if door.lock() is None:
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
    done = door.unlock(force)
    if done is None:
        out.document({"lock": None, "broken": False, "message": "No upgrade lock."})
        out.line("There is no upgrade lock: nothing to break.")
        return OK
    return _answered(door, out, done, 0 if done["broken"] else wait_for)


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
    done = door.cancel()
    if done is None:
        out.document({"lock": None, "message": "No upgrade is running."})
        out.line("No upgrade is running: nothing to cancel.")
        return OK
    return _answered(door, out, done, wait_for)
