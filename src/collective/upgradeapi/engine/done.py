"""How far a profile got: its recorded version, and the steps run ahead of it.

Its version moves with the steps a run did (:func:`advance_version`), or to
its code's version when a downgraded profile is stamped (:func:`stamp`).

GenericSetup records one version per profile. When a single step runs while
earlier steps of its profile are still pending, the version cannot move past
it; this record keeps it from running again. Entries are dropped once the
profile's version moves past them.
"""

from persistent.mapping import PersistentMapping
from zope.annotation.interfaces import IAnnotations

import logging


logger = logging.getLogger("collective.upgradeapi")

KEY = "collective.upgradeapi.done"


def done_step_ids(site, profile_id):
    """The ids of the steps of ``profile_id`` that ran on their own.

    :param site: the Plone site.
    :param profile_id: a GenericSetup profile id.
    :returns: a frozenset of step ids (empty when none).
    """
    return frozenset(IAnnotations(site).get(KEY, {}).get(profile_id, ()))


def set_done_step_ids(site, profile_id, step_ids):
    """Replace the record for ``profile_id``; an empty set removes it."""
    storage = IAnnotations(site).get(KEY, {})
    recorded = tuple(sorted(step_ids))
    if recorded == storage.get(profile_id, ()):
        return
    if recorded:
        IAnnotations(site).setdefault(KEY, PersistentMapping())[profile_id] = recorded
    else:
        del storage[profile_id]


def advance_version(site, setup, plan, ran):
    """Move the recorded version past every step that is done, no further.

    Steps done beyond the new version are remembered, so that a later run of
    the profile does not run them again.

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
    set_done_step_ids(site, plan.id, remaining)


def stamp(setup, plan):
    """Record a downgraded profile at its code's version; return the line
    that says so."""
    setup.setLastVersionForProfile(plan.id, plan.code_version)
    said = f"Stamped profile {plan.id} at version {plan.code_version}"
    said += f" (was {plan.instance})."
    logger.info(said)
    return said
