"""How far a profile got: its recorded version and the steps run ahead of it."""

from collective.upgradeapi.engine import done

import logging


logger = logging.getLogger("collective.upgradeapi")


def advance_version(site, setup, plan, ran):
    """Move the recorded version past every step that is done, no further.

    GenericSetup records one version per profile. Steps done beyond the new
    version are remembered (:mod:`.done`) so that a later run of the profile
    does not run them again.

    :param plan: the profile's :class:`.profiles.ProfilePlan` (before the run).
    :param ran: ids of the steps of ``plan`` that ran now.
    """
    done_ids = {s.id for s in plan.steps if s.done} | ran
    steps = plan.steps
    version = None
    covered = 0
    for index, step in enumerate(steps):
        if step.id not in done_ids:
            break
        following = steps[index + 1] if index + 1 < len(steps) else None
        if step.dest is not None and (following is None or following.dest != step.dest):
            version = step.dest
            covered = index + 1
    if version is not None and version != plan.instance:
        setup.setLastVersionForProfile(plan.id, version)
        logger.info("Profile %s is now at version %s.", plan.id, version)
    remaining = {s.id for s in steps[covered:] if s.id in done_ids}
    done.set_done_step_ids(site, plan.id, remaining)
