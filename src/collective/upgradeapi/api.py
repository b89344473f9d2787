"""The engine API: plan and run upgrades on a site, with everything around a run.

Every door uses these functions: the ``@upgrade`` REST services, the
in-process ``plone-upgrade --zope-conf`` command, and add-on code. Nothing
here knows HTTP. Errors are raised as :class:`.errors.UpgradeError`
subclasses, which carry the HTTP status and the JSON body the services
answer with.

What a caller provides, as a request to Zope does: the site wrapped in
acquisition with a request at the top of the chain (``makerequest``), the
site hook set (``zope.component.hooks.setSite``), and a security context
whose user may manage the portal (steps check permissions as usual). The
in-process door (:mod:`collective.upgradeapi.cli.inprocess`) shows how.

Example, in a script run with ``zconsole run``::

    from collective.upgradeapi import api

    result = api.upgrade(site, api.Selection(profiles="all"), user="cron")
    if not result.ok:
        print(result.failed_step.error["message"])
"""

from AccessControl import getSecurityManager
from Acquisition import aq_parent
from collective.upgradeapi import config
from collective.upgradeapi.engine import done
from collective.upgradeapi.engine.plan import Planner
from collective.upgradeapi.engine.results import ProfileResult
from collective.upgradeapi.engine.results import RunResult
from collective.upgradeapi.engine.runner import RUN
from collective.upgradeapi.engine.runner import Runner
from collective.upgradeapi.engine.selection import check_stamp
from collective.upgradeapi.engine.selection import normalise_profile_id
from collective.upgradeapi.engine.selection import Selection
from collective.upgradeapi.engine.txn import run_transaction
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.tracking import publishing
from collective.upgradeapi.tracking import store
from collective.upgradeapi.tracking.publishing import records
from collective.upgradeapi.tracking.run import tracked_run
from persistent.mapping import PersistentMapping
from zope.annotation.interfaces import IAnnotations

import time


__all__ = [
    "Selection",
    "break_lock",
    "cancel",
    "get_run",
    "lock_info",
    "pending",
    "remove_records",
    "runs",
    "stamp",
    "status",
    "upgrade",
]

AUDIT_KEY = "collective.upgradeapi.audit"

#: Recording steps done without running them, or stamping a profile, skips
#: work: it needs this permission (Manager by default), whoever calls.
MARK_DONE = "collective.upgradeapi: Mark upgrade steps done"


def check_may_mark_done(site):
    """:raises .errors.UpgradeError: 403 unless the user may mark steps done."""
    if not getSecurityManager().checkPermission(MARK_DONE, site):
        raise UpgradeError(
            "Recording steps as done without running them needs the "
            f"permission {MARK_DONE!r} (Manager by default).",
            error_type="Forbidden",
            status=403,
        )


def pending(site, profile=None):
    """The installed profiles that need attention, core first, in run order.

    :param profile: only this profile id.
    :returns: a list of :class:`.engine.profiles.ProfilePlan` (pending steps or
        downgraded).
    """
    return Planner(site).pending_profiles(profile)


def current_user():
    """``(user id, path of its user folder)`` of the security context."""
    user = getSecurityManager().getUser()
    user_id = user.getId() or user.getUserName()
    folder = aq_parent(user)
    path = "/".join(folder.getPhysicalPath()[1:-1]) if folder is not None else ""
    return user_id, path


def upgrade(
    site,
    selection=None,
    dry_run=False,
    user=None,
    listeners=(),
    commit=RUN,
    mark_done=False,
    changes=None,
    hold_writes=None,
):
    """Run ``selection`` on ``site`` with the lock, status and history around it.

    Checks the selection (nothing runs when it cannot), takes the site's
    upgrade lock, runs the steps in one transaction (doomed for a dry run),
    commits a real run that did not fail with a note and the user for the Undo
    tab, records the run in the history and releases the lock, whatever
    happens.

    :param site: the Plone site (acquisition-wrapped).
    :param selection: a :class:`Selection`; Plone's core upgrade by default.
    :param dry_run: run everything, commit nothing.
    :param user: who runs it, for the history and the transaction; the
        authenticated user when omitted.
    :param listeners: more ``listener(event, payload)`` callables for progress
        (see :attr:`.engine.runner.Runner.listeners`).
    :param commit: ``"run"`` (all or nothing), ``"profile"`` or ``"step"``:
        what one transaction holds (see :mod:`.engine.runner`). A dry run is
        one doomed transaction whatever this says.
    :param mark_done: record the selected pending steps as done without
        running them.
    :param changes: record what each step changes (``result.changes`` and
        each step's ``changes``, see :mod:`.engine.changes`); ``None`` (the
        default) records it for a dry run only.
    :param hold_writes: ``True``: other writers are held off (503) for the
        whole run; ``False``: never; ``None``: the site's default (see
        :func:`.config.hold_mode`), by default only while a unit runs again
        after a write conflict. The result's ``writes_held`` says how long
        they were held.
    :returns: the :class:`.engine.results.RunResult`; a failed step is a
        result too (``result.ok`` is false, nothing was committed).
    :raises .engine.selection.SelectionError: the selection cannot run (400).
    :raises .errors.Locked: another run holds the lock (409).
    :raises .errors.UpgradeError: a write conflict at every attempt of a
        unit (409), nothing more committed;
        ``mark_done`` without the permission :data:`MARK_DONE` (403).
    """
    if mark_done:
        check_may_mark_done(site)
    selection = selection if selection is not None else Selection()
    user_id, user_path = (user, "") if user else current_user()
    runner = Runner(
        site, dry_run=dry_run, commit=commit, mark_done=mark_done, changes=changes
    )
    plans = runner.check(selection)
    recorded = {**selection.as_dict(), "commit": commit, "mark_done": mark_done}
    hold = config.hold_mode(site, hold_writes)
    with tracked_run(site, user_id, dry_run, recorded, plans, hold) as tracked:
        runner.listeners.extend([tracked, *listeners])
        tracked.result = runner.run(
            selection, before_commit=_audit(site, tracked, user_id, user_path)
        )
    tracked.result.writes_held = tracked.held
    return tracked.result


def _audit(site, tracked, user_id, user_path):
    """What each commit of a real run carries: a note naming the run and the
    user (the Undo tab), and the site's audit record."""

    def before_commit(txn, result):
        txn.note(f"collective.upgradeapi: upgrade run {tracked.run_id}")
        txn.setUser(user_id, user_path)
        audit = IAnnotations(site).setdefault(AUDIT_KEY, PersistentMapping())
        audit.update(last_run=tracked.run_id, user=user_id, commits=len(result.commits))
        return audit

    return before_commit


def stamp(site, profile_ids, user=None):
    """Record downgraded profiles at their code's version; no step runs.

    A profile is *downgraded* when the database records a newer version than
    its code knows (:attr:`.engine.profiles.ProfilePlan.downgraded`): usually,
    install the matching code. When the recorded version is wrong instead (set
    by hand, or by code never released), stamping records the profile at its
    code's version (Alembic's ``stamp``), with the lock held and the run in
    the history, like :func:`upgrade`; nothing pending is skipped (use
    ``mark_done`` for that).

    :param profile_ids: the profiles to stamp (``profile-`` prefixes allowed).
    :param user: who stamps, for the history and the transaction; the
        authenticated user when omitted.
    :returns: the :class:`.engine.results.RunResult`.
    :raises .engine.selection.SelectionError: a profile is unknown, not
        installed or not downgraded (400).
    :raises .errors.UpgradeError: without the permission :data:`MARK_DONE`
        (403); another run holds the lock (409).
    """
    check_may_mark_done(site)
    started = time.monotonic()
    ids = tuple(dict.fromkeys(normalise_profile_id(p) for p in profile_ids))
    user_id, user_path = (user, "") if user else current_user()
    planner = Planner(site)
    plans = planner.checked(check_stamp, ids)
    recorded = {"stamp": list(ids), "profiles": None}
    with tracked_run(site, user_id, False, recorded, plans) as tracked:
        with run_transaction(site._p_jar) as txn:
            # Checked again in the run's transaction: the newest committed state.
            plans = planner.checked(check_stamp, ids)
            report = [done.stamp(planner.setup, plan) for plan in plans]
            txn.note(f"collective.upgradeapi: upgrade run {tracked.run_id} (stamp)")
            txn.setUser(user_id, user_path)
            txn.finish(True)
        tracked.result = RunResult(
            dry_run=False,
            profiles=[
                ProfileResult(plan.id, plan.instance, plan.code_version, plan.fs)
                for plan in plans
            ],
            report="".join(f"{line}\n" for line in report),
            committed=True,
            commits=[{"unit": "stamp", "steps": [], "transaction": None}],
            duration=time.monotonic() - started,
        )
    return tracked.result


def status(site):
    """The live status of the site's upgrade runs (see
    :func:`.tracking.publishing.status`)."""
    return publishing.status(records(site))


def runs(site):
    """Every recorded run, newest first, as plain dicts."""
    state = records(site)
    return state.entries() if state is not None else []


def get_run(site, run_id):
    """The recorded run ``run_id`` as a plain dict, or ``None``."""
    state = records(site)
    return state.entry(run_id) if state is not None else None


def lock_info(site):
    """The site's upgrade lock as the services show it, or ``None``."""
    state = records(site)
    return state.lock() if state is not None else None


def break_lock(site, user, force=False):
    """Break a stale lock (its run becomes abandoned), or, with ``force``,
    ask a live lock's run to cancel: a live lock is never removed, so two
    runs never overlap.

    :param user: who breaks it, for the history.
    :param force: for a live lock, ask its run to cancel instead of refusing.
    :returns: ``{"broken", "lock"}``: ``broken`` is ``True`` when the lock
        was removed (``lock`` as it was), ``False`` when its run was asked to
        cancel (``lock`` with ``cancel_requested``).
    :raises .errors.UnknownResource: there is no lock.
    :raises .errors.Locked: the lock is alive and ``force`` is false.
    :raises .errors.TooLate: its run commits its whole work now.
    """
    with publishing.side_connection(site) as side:
        broken, shown = side.transact(lambda state: state.break_lock(user, force))
    return {"broken": broken, "lock": shown}


def remove_records(site):
    """Delete every record this package keeps in ``site`` (lock, status,
    history, steps run on their own). Not committed: commit to keep it.

    :returns: the annotation keys that were removed.
    """
    annotations = IAnnotations(site)
    removed = [key for key in store.KEYS if key in annotations]
    for key in removed:
        del annotations[key]
    return removed


def cancel(site, user):
    """Ask the run that holds the site's lock to stop.

    The run reads the request at its next step boundary (the start of a step,
    or before it commits), stops there, aborts what it had not committed,
    is recorded as ``cancelled`` by ``user`` and releases the lock. A run
    stuck inside one step stops when its Zope process is stopped.

    :param user: who cancels it, for the history.
    :returns: ``{"lock"}``, the lock with ``cancel_requested``.
    :raises .errors.UnknownResource: no run holds the lock.
    :raises .errors.TooLate: the run commits its whole work now.
    """
    with publishing.side_connection(site) as side:
        return {"lock": side.transact(lambda state: state.ask_cancel(user))}
