"""Stamp: record a downgraded profile at the version its code knows.

A profile is *downgraded* when the database records a newer version than its
code knows (its ``metadata.xml`` and the destinations of its upgrade steps).
Usually the code was downgraded: install the matching code instead. When the
recorded version is wrong (set by hand, or by code that was never released),
stamping records the profile at its code's version, with the lock held and
the run in the history (Alembic's ``stamp``); no step runs.

A profile whose steps lead past its ``metadata.xml`` (plone.volto 6.0.1
declares 1100, its steps reach 1101) is not downgraded at 1101: GenericSetup
records that version itself, and there is nothing to stamp.

Only a downgraded profile can be stamped, and only down to its code's
version: nothing pending is skipped (use ``mark_done`` for that).
"""

from collective.upgradeapi.engine.plan import Planner
from collective.upgradeapi.engine.results import ProfileResult
from collective.upgradeapi.engine.results import RunResult
from collective.upgradeapi.engine.selection import check
from collective.upgradeapi.engine.selection import Selection
from collective.upgradeapi.engine.selection import SelectionError
from collective.upgradeapi.engine.txn import run_transaction
from collective.upgradeapi.errors import shown
from collective.upgradeapi.tracking.run import tracked_run

import logging
import time


logger = logging.getLogger("collective.upgradeapi")


def downgraded_plans(site, profile_ids):
    """The plans of ``profile_ids``; each must be installed and downgraded.

    :raises .engine.selection.SelectionError: otherwise (400).
    """
    planner = Planner(site)
    try:
        plans = check(planner, Selection(profiles=tuple(profile_ids)))
    except SelectionError as exc:
        if exc.error_type != "Downgraded":
            raise
        plans = [p for p in planner.all_profiles() if p.id in set(profile_ids)]
    not_downgraded = [plan.id for plan in plans if not plan.downgraded]
    if not_downgraded:
        raise SelectionError(
            f"Profile(s) not downgraded: {', '.join(shown(not_downgraded))}. "
            "Stamping records a profile at its code's version only when the "
            "database records a newer one than the code knows; to skip "
            "pending steps, use mark_done.",
            not_downgraded=shown(not_downgraded),
        )
    return plans


def stamp(site, profile_ids, user):
    """Record each downgraded profile at its code's version; return the result.

    The code's version is the newer of ``metadata.xml`` and the last
    destination of the profile's steps. Use :func:`collective.upgradeapi.api.stamp`,
    which checks the permission first.

    :param user: ``(user id, user folder path)`` for the history and the
        transaction.
    :raises .engine.selection.SelectionError: a profile is unknown, not
        installed or not downgraded (400).
    :raises .errors.Locked: another run holds the lock (409).
    """
    started = time.monotonic()
    user_id, user_path = user
    planner = Planner(site)
    plans = downgraded_plans(site, profile_ids)
    selection = {"stamp": list(profile_ids), "profiles": None}
    with tracked_run(site, user_id, False, selection, plans) as tracked:
        with run_transaction(site._p_jar) as txn:
            plans = downgraded_plans(site, profile_ids)
            for plan in plans:
                site.portal_setup.setLastVersionForProfile(plan.id, plan.code_version)
                logger.info(
                    "Stamped profile %s at version %s (was %s).",
                    plan.id,
                    plan.code_version,
                    plan.instance,
                )
            txn.note(f"collective.upgradeapi: upgrade run {tracked.run_id} (stamp)")
            txn.setUser(user_id, user_path)
            txn.finish(True)
        tracked.result = _result(plans, planner, started)
    return tracked.result


def _result(plans, planner, started):
    result = RunResult(dry_run=False)
    result.profiles = [
        ProfileResult(
            id=plan.id,
            before=plan.instance,
            fs=plan.fs,
            after=planner.instance_version(plan.id),
        )
        for plan in plans
    ]
    result.commits = [{"unit": "stamp", "steps": [], "transaction": None}]
    result.committed = True
    result.report = "".join(
        f"Stamped profile {p.id} at version {p.after} (was {p.before}).\n"
        for p in result.profiles
    )
    result.duration = time.monotonic() - started
    return result
