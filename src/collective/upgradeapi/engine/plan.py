"""What is pending: the upgrade steps of every installed profile, in run order.

Nothing here writes to the database. The order is the order in which
:mod:`collective.upgradeapi.engine.runner` executes steps:

1. the core group, exactly as ``portal_migration.upgrade`` runs it: Plone's
   "pre" add-on list, the core (base) profile, then Plone's core add-on list;
2. every other installed profile, dependencies (``metadata.xml``) first, then
   by id.

Within a profile, steps come in GenericSetup's order (source version, then
sortkey; grouped and ungrouped steps alike).
"""

from collective.upgradeapi import compat
from collective.upgradeapi.engine import done
from dataclasses import dataclass
from dataclasses import field
from Products.CMFCore.utils import getToolByName
from Products.GenericSetup.upgrade import normalize_version
from Products.GenericSetup.upgrade import UpgradeEntity

import logging


logger = logging.getLogger("collective.upgradeapi")

UNKNOWN = "unknown"


def version_str(version):
    """Return a GenericSetup version (tuple, string, ``None``) as a string.

    :param version: a version as GenericSetup stores it.
    :returns: ``"6100"`` for ``("6100",)``, ``None`` for "any version".
    """
    if version is None:
        return None
    if isinstance(version, tuple):
        return ".".join(version)
    return str(version)


@dataclass(frozen=True)
class PendingStep:
    """One upgrade step that has not run yet for its profile."""

    id: str
    profile: str
    title: str
    description: str
    source: str | None
    dest: str | None
    proposed: bool
    done: bool
    entity: UpgradeEntity = field(compare=False, repr=False)

    @property
    def group(self):
        """The built-in ``upgrade_steps`` key: ``"<source>-<dest>"``."""
        return f"{self.source or 'all'}-{self.dest or 'all'}"

    def as_dict(self):
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description or "",
            "source": self.source,
            "dest": self.dest,
            "proposed": self.proposed,
            "done": self.done,
        }


@dataclass
class ProfilePlan:
    """An installed profile and its pending steps."""

    id: str
    title: str
    core: bool
    fs: str | None
    instance: str
    steps: list = field(default_factory=list)
    #: a downgraded profile whose own registered steps reach the recorded
    #: version: its metadata.xml lags behind its steps (not downgraded code).
    metadata_lags: bool = False

    @property
    def downgraded(self):
        """The database records a newer version than the code provides."""
        if self.fs is None or self.instance == UNKNOWN:
            return False
        return normalize_version(self.instance) > normalize_version(self.fs)

    @property
    def pending(self):
        return [step for step in self.steps if not step.done]

    def as_dict(self):
        return {
            "id": self.id,
            "title": self.title,
            "core": self.core,
            "downgraded": self.downgraded,
            "metadata_lags": self.metadata_lags,
            "versions": {"fs": self.fs, "instance": self.instance},
            "steps": [step.as_dict() for step in self.steps],
        }


class Planner:
    """Reads the pending upgrades of one Plone site.

    :param site: the Plone site (acquisition-wrapped).
    """

    def __init__(self, site):
        self.site = site
        self.setup = getToolByName(site, "portal_setup")
        self.migration = getToolByName(site, "portal_migration")

    @property
    def core_profile_id(self):
        """The base profile of the site, ``Products.CMFPlone:plone`` for Plone."""
        return compat.core_profile_id(self.migration)

    def core_addon_ids(self):
        """Plone's own lists of core add-ons, as ``(pre, post)`` profile ids.

        Only add-ons whose code is importable count, as in Plone's upgrade.
        """
        pre, post = compat.core_addon_lists(self.migration)
        return (
            [a.profile_id for a in pre if a.safe()],
            [a.profile_id for a in post if a.safe()],
        )

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

    def profile_exists(self, profile_id):
        try:
            self.setup.getProfileInfo(profile_id)
        except KeyError:
            return False
        return True

    def title(self, profile_id):
        try:
            info = self.setup.getProfileInfo(profile_id)
        except KeyError:
            return profile_id
        return info.get("title") or profile_id

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
        # Like Plone's upgrade (``portal_setup.upgradeProfile`` stops at the
        # version metadata.xml declares), never offer steps beyond the code's
        # version. (Filtered here: GenericSetup's own ``dest`` filter would
        # also change what counts as ``proposed``.)
        limit = normalize_version(fs) if fs is not None else None
        done_ids = done.done_step_ids(self.site, profile_id)
        steps = []
        for item in self.setup.listUpgrades(profile_id):
            for info in item if isinstance(item, list) else [item]:
                if (
                    limit is not None
                    and info["dest"] is not None
                    and normalize_version(info["dest"]) > limit
                ):
                    continue
                steps.append(
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
                )
        plan = ProfilePlan(
            id=profile_id,
            title=self.title(profile_id),
            core=core,
            fs=fs,
            instance=instance,
            steps=steps,
        )
        if plan.downgraded:
            plan.metadata_lags = self._steps_reach(profile_id, instance)
        return plan

    def _steps_reach(self, profile_id, version):
        """Whether a registered step of the profile leads to ``version``."""
        for item in self.setup.listUpgrades(profile_id, show_old=True):
            for info in item if isinstance(item, list) else [item]:
                if version_str(info["dest"]) == version:
                    return True
        return False

    def core_group(self):
        """Profile ids of the core upgrade, in the order Plone runs them."""
        pre, post = self.core_addon_ids()
        ordered = []
        for profile_id in [*pre, self.core_profile_id, *post]:
            if profile_id not in ordered:
                ordered.append(profile_id)
        return ordered

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
        placed = set()
        remaining = sorted(profile_ids)
        while remaining:
            ready = [p for p in remaining if deps[p] <= placed]
            if not ready:
                # A dependency cycle: fall back to id order for the rest.
                logger.warning("Dependency cycle among profiles %s", remaining)
                ready = remaining[:1]
            for profile_id in ready:
                ordered.append(profile_id)
                placed.add(profile_id)
            remaining = [p for p in remaining if p not in placed]
        return ordered

    def all_profiles(self, profile_filter=None):
        """Plans for every installed profile, in run order, core group first.

        :param profile_filter: only this profile id, if given.
        :returns: a list of :class:`ProfilePlan`, including ones with no steps.
        """
        core = self.core_group()
        plans = []
        for profile_id in [*core, *self.addon_ids()]:
            if profile_filter is not None and profile_id != profile_filter:
                continue
            plan = self.profile_plan(profile_id, core=profile_id in core)
            if plan is not None:
                plans.append(plan)
        return plans

    def pending_profiles(self, profile_filter=None):
        """Plans of the profiles that need attention: pending steps, or downgraded."""
        return [
            plan
            for plan in self.all_profiles(profile_filter)
            if plan.steps or plan.downgraded
        ]
