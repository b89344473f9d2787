"""Plone's core upgrade, replayed step by step as ``portal_migration`` runs it.

The sequence, the same on Plone 6.0, 6.1 and 6.2 (the differences are in
:mod:`collective.upgradeapi.compat`): the "pre" core add-ons, the core
profile's steps, then, if the core profile reached its code's version, the
core add-ons, and the catalog rebuild and workflow role update that steps
asked for. ``tests/parity/test_core_parity.py`` checks that the end state is the
one Plone's own upgrade leaves.
"""

from collective.upgradeapi import compat
from collective.upgradeapi.engine.profiles import PendingStep
from functools import partial

import logging


logger = logging.getLogger("collective.upgradeapi")

#: (task id, title, the migration tool's "is it needed" method, the call)
FOLLOW_UPS = (
    ("recatalog", "Rebuild the catalog", "needRecatalog", compat.recatalog),
    (
        "update-role-mappings",
        "Update workflow role mappings",
        "needUpdateRole",
        compat.update_role_mappings,
    ),
)


class IncompleteUpgradePath(Exception):
    """The core profile's steps did not reach the code's version."""


def run_core(runner, plans):
    """Run the core group's ``plans`` in the run ``runner`` is doing, in
    Plone's order.

    Where Plone's upgrade logs an error when the core steps fall short of the
    code's version (a gap in the upgrade path) and stops, this run fails: a
    task that checks the version raises :class:`IncompleteUpgradePath`, so
    nothing of the run is committed (or, with ``commit`` per profile or
    step, nothing after the core profile).
    """
    planner = runner.planner
    migration = planner.migration
    core_id = planner.core_profile_id
    by_id = {plan.id: plan for plan in plans}
    version = planner.instance_version(core_id)
    logger.info("Starting the upgrade of Plone from version %s.", version)
    for profile_id in planner.core_group():
        if profile_id in by_id:
            runner.run_profile(by_id[profile_id])
        if profile_id == core_id and migration.needUpgrading():
            runner.run_task(_path_check(migration, core_id))
    for task_id, title, needed, follow_up in FOLLOW_UPS:
        if getattr(migration, needed)():
            call = partial(follow_up, migration)
            runner.run_task(PendingStep(task_id, core_id, title, None, None, call=call))
    logger.info("Plone's core upgrade has finished.")


def _path_check(migration, core_id):
    """The task that fails a core run whose steps fell short."""

    def check():
        raise IncompleteUpgradePath(
            f"The core profile's upgrade steps ended at version "
            f"{migration.getInstanceVersion()}, not at the code's version "
            f"{migration.getFileSystemVersion()}: its upgrade path has a gap. "
            "Plone's core add-ons were not upgraded; nothing of the core "
            "profile after its last committed unit was kept."
        )

    title = "Check the core upgrade path"
    return PendingStep("upgrade-path", core_id, title, None, None, call=check)
