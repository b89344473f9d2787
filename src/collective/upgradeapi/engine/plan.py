"""What is pending: the upgrade steps of every installed profile, in run order.

Nothing here writes to the database. The order is the order in which
:mod:`collective.upgradeapi.engine.runner` executes steps:

1. the core group, exactly as ``portal_migration.upgrade`` runs it: Plone's
   "pre" add-on list, the core (base) profile, then Plone's core add-on list;
2. every other installed profile, dependencies (``metadata.xml``) first, then
   by id.

Within a profile, the steps are exactly those GenericSetup lists and runs:
``portal_setup.listUpgrades`` in its order (source version, then sortkey;
grouped and ungrouped steps alike), past the version ``metadata.xml`` declares
where the steps go further, as ``portal_setup.upgradeProfile`` runs them; for
Plone's core profile, ``portal_migration.listUpgrades()``.
``tests/parity/`` compares both on every profile shape.
"""

from collective.upgradeapi import compat
from collective.upgradeapi.engine import done
from collective.upgradeapi.engine import pictures
from collective.upgradeapi.engine.profiles import flat
from collective.upgradeapi.engine.profiles import highest
from collective.upgradeapi.engine.profiles import PendingStep
from collective.upgradeapi.engine.profiles import ProfilePlan
from collective.upgradeapi.engine.profiles import UNKNOWN
from collective.upgradeapi.engine.profiles import version_str
from Products.CMFCore.utils import getToolByName
from Products.GenericSetup.upgrade import normalize_version
from zope.annotation.interfaces import IAnnotations

import functools
import logging


logger = logging.getLogger("collective.upgradeapi")


class Planner:
    """Reads the pending upgrades of one Plone site.

    :param site: the Plone site (acquisition-wrapped).
    """

    def __init__(self, site):
        self.site = site
        self.setup = getToolByName(site, "portal_setup")
        self.migration = getToolByName(site, "portal_migration")
        # The last check: ``((check, its arguments, state), plans)``.
        self._checked = None

    @functools.cached_property
    def core_profile_id(self):
        """The base profile of the site, ``Products.CMFPlone:plone`` for Plone."""
        return compat.core_profile_id(self.migration)

    def state(self):
        """What planning reads from the database, as plain values: the core
        profile's id, every recorded version, the steps run on their own.

        Equal states give equal plans: the rest is code (registered steps,
        ``metadata.xml``, Plone's core add-on lists), but for the
        ``proposed`` flag of a step with a checker, which no run reads.
        """
        return (
            self.setup.getBaselineContextID(),
            pictures.versions(self.site)[1],
            dict(IAnnotations(self.site).get(done.KEY, {})),
        )

    def checked(self, check, *args):
        """The plans ``check(self, *args)`` returns (a check of
        :mod:`.selection`). Asked again with the same arguments, as a run asks
        in its transaction after the check made before it took the lock, the
        plans are taken over unless what planning reads changed in between
        (another process ran or stamped): then planned again."""
        key = check, args, self.state()
        if self._checked is None or self._checked[0] != key:
            self.__dict__.pop("core_profile_id", None)
            self._checked = key, check(self, *args)
        return self._checked[1]

    def instance_version(self, profile_id):
        """The version recorded in the database, ``"unknown"`` if not installed."""
        return version_str(self.setup.getLastVersionForProfile(profile_id))

    def fs_version(self, profile_id):
        """The version in the profile's ``metadata.xml``, or ``None``."""
        try:
            return self.setup.getVersionForProfile(profile_id)
        except KeyError:
            return None

    def is_installed(self, profile_id):
        return self.instance_version(profile_id) != UNKNOWN

    def profile_info(self, profile_id):
        """GenericSetup's info of a registered profile, or ``None``."""
        try:
            return self.setup.getProfileInfo(profile_id)
        except KeyError:
            return None

    def profile_exists(self, profile_id):
        return self.profile_info(profile_id) is not None

    def listed(self, profile_id):
        """The step infos GenericSetup lists as pending for ``profile_id``.

        Exactly what runs: ``portal_setup.listUpgrades(profile_id)`` (what
        ``upgradeProfile`` runs) for every profile but Plone's core profile,
        whose steps and order Plone's upgrade takes from
        ``portal_migration.listUpgrades()`` (up to the core's ``metadata.xml``
        version only). That call passes a destination, which changes what
        GenericSetup calls ``proposed``; the flags are the ones
        ``portal_setup`` shows (its Upgrades tab), as for every profile.
        """
        if profile_id != self.core_profile_id:
            return list(flat(self.setup.listUpgrades(profile_id)))
        # GenericSetup's own flag, as listUpgrades(profile_id) computes it.
        source = self.setup.getLastVersionForProfile(profile_id)
        return [
            {**info, "proposed": info["step"].isProposed(self.setup, source)}
            for info in flat(self.migration.listUpgrades())
        ]

    def top_version(self, profile_id, listed):
        """The highest destination a run of the profile can reach, or ``None``.

        :param listed: the profile's pending step infos (:meth:`listed`).
        """
        if profile_id == self.core_profile_id:
            return self.fs_version(profile_id)
        dests = [version_str(info["dest"]) for info in listed if info["dest"]]
        if not dests:
            # Nothing pending: the registry tells how far the steps go.
            every = flat(self.setup.listUpgrades(profile_id, show_old=True))
            dests = [version_str(info["dest"]) for info in every if info["dest"]]
        return highest(dests)

    def profile_plan(self, profile_id, core=False):
        """The plan for one installed profile (its steps may be empty).

        :param profile_id: a GenericSetup profile id.
        :param core: whether the profile belongs to Plone's core upgrade.
        :returns: a :class:`ProfilePlan`, or ``None`` if it is not installed.
        """
        instance = self.instance_version(profile_id)
        if instance == UNKNOWN:
            return None
        fs = self.fs_version(profile_id)
        listed = self.listed(profile_id)
        done_ids = done.done_step_ids(self.site, profile_id)
        steps = [
            PendingStep(
                id=info["id"],
                profile=profile_id,
                title=info["title"],
                description=info["description"],
                source=version_str(info["source"]),
                dest=version_str(info["dest"]),
                proposed=bool(info["proposed"]),
                done=info["id"] in done_ids,
                entity=info["step"],
            )
            for info in listed
        ]
        top = None
        if steps or (
            fs is not None and normalize_version(instance) > normalize_version(fs)
        ):
            top = self.top_version(profile_id, listed)
        return ProfilePlan(
            id=profile_id,
            title=(self.profile_info(profile_id) or {}).get("title") or profile_id,
            core=core,
            fs=fs,
            instance=instance,
            steps=steps,
            top=top,
        )

    def core_group(self):
        """Profile ids of the core upgrade, in the order Plone runs them: its
        "pre" add-ons, the core profile, its other core add-ons (only those
        whose code is importable count, as in Plone's upgrade)."""
        pre, post = compat.core_addon_lists(self.migration)
        ids = [a.profile_id for a in pre if a.safe()] + [self.core_profile_id]
        ids += [a.profile_id for a in post if a.safe()]
        return list(dict.fromkeys(ids))

    def addon_ids(self):
        """Installed non-core profiles with registered upgrade steps, in run order."""
        core = set(self.core_group())
        candidates = [
            profile_id
            for profile_id in self.setup.listProfilesWithUpgrades()
            if profile_id not in core and self.is_installed(profile_id)
        ]
        return self._dependency_order(candidates)

    def _dependency_order(self, profile_ids):
        """Sort profiles so that each comes after its metadata.xml dependencies."""
        wanted = set(profile_ids)
        deps = {}
        for profile_id in profile_ids:
            try:
                raw = self.setup.getDependenciesForProfile(
                    profile_id, ignore_broken=True
                )
            except KeyError:
                raw = ()
            deps[profile_id] = {d.removeprefix("profile-") for d in raw} & wanted
        ordered = []
        remaining = sorted(profile_ids)
        while remaining:
            ready = [p for p in remaining if deps[p] <= set(ordered)]
            if not ready:
                # A dependency cycle: fall back to id order for the rest.
                logger.warning("Dependency cycle among profiles %s", remaining)
                ready = remaining[:1]
            ordered += ready
            remaining = [p for p in remaining if p not in ready]
        return ordered

    def all_profiles(self, profile_filter=None):
        """Plans for every installed profile, in run order, core group first.

        :param profile_filter: only this profile id, if given.
        :returns: a list of :class:`ProfilePlan`, including ones with no steps.
        """
        core = self.core_group()
        plans = [
            self.profile_plan(profile_id, core=profile_id in core)
            for profile_id in [*core, *self.addon_ids()]
            if profile_filter in (None, profile_id)
        ]
        return [plan for plan in plans if plan is not None]

    def pending_profiles(self, profile_filter=None):
        """Plans of the profiles that need attention: pending steps, or downgraded."""
        return [
            plan
            for plan in self.all_profiles(profile_filter)
            if plan.steps or plan.downgraded
        ]
