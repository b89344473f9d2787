"""What to run, and whether the site can run it: checked before anything runs."""

from collective.upgradeapi.errors import LIST
from collective.upgradeapi.errors import shown
from collective.upgradeapi.errors import UpgradeError
from dataclasses import dataclass


class SelectionError(UpgradeError):
    """The selection names something that cannot be run; nothing ran (400)."""

    status = 400


@dataclass(frozen=True)
class Selection:
    """What to run: Plone's core upgrade, whole profiles, or single steps.

    :param profiles: ``None`` for the core upgrade, ``"all"``, or profile ids.
    :param steps: step ids, or ``None``.
    """

    profiles: object = None
    steps: tuple | None = None

    @property
    def only(self):
        """The step ids to run, as a set; ``None``: every pending step."""
        return None if self.steps is None else set(self.steps)

    def as_dict(self):
        """The selection as the history records it."""
        profiles = self.profiles
        if profiles not in (None, "all"):
            profiles = list(profiles)
        return {
            "profiles": profiles,
            "steps": list(self.steps) if self.steps else None,
        }


def _listed(ids):
    return ", ".join(shown(ids))


def normalise_profile_id(profile_id):
    """A profile id without GenericSetup's ``profile-`` prefix."""
    return profile_id.removeprefix("profile-")


def check(planner, selection):
    """Validate ``selection`` against the site.

    :param planner: a :class:`.plan.Planner` of the site.
    :returns: the profile plans the run will touch, in run order.
    :raises SelectionError: when something cannot be run; nothing ran.
    """
    plans = planner.all_profiles()
    if selection.steps is not None:
        return _check_steps(selection.steps, plans)
    if selection.profiles in (None, "all"):
        # Plone's core upgrade always; with "all", every profile with pending
        # steps. A downgraded profile is passed over, as Plone's own upgrade
        # does (GET @upgrade flags it); named explicitly, it is refused.
        chosen = [
            plan
            for plan in plans
            if (plan.core or (selection.profiles == "all" and plan.pending))
            and (not plan.downgraded or plan.id == planner.core_profile_id)
        ]
    else:
        chosen = _check_profiles(planner, selection.profiles, plans)
    downgraded = [plan.id for plan in chosen if plan.downgraded]
    if downgraded:
        raise SelectionError(
            "The database records a newer version than the code knows "
            f"for: {_listed(downgraded)}. Install the version of the code "
            "that the database was upgraded with; if the recorded version is "
            "wrong instead, stamp the profile at its code's version. These "
            "profiles cannot be upgraded until then.",
            error_type="Downgraded",
            downgraded=shown(downgraded),
        )
    return chosen


def check_stamp(planner, profile_ids):
    """The plans of the profiles to stamp: each installed and downgraded.

    :raises SelectionError: otherwise; nothing ran.
    """
    plans = _check_profiles(planner, profile_ids, planner.all_profiles())
    not_downgraded = [plan.id for plan in plans if not plan.downgraded]
    if not_downgraded:
        raise SelectionError(
            f"Profile(s) not downgraded: {_listed(not_downgraded)}. "
            "Stamping records a profile at its code's version only when the "
            "database records a newer one than the code knows; to skip "
            "pending steps, use mark_done.",
            not_downgraded=shown(not_downgraded),
        )
    return plans


def _check_profiles(planner, profile_ids, plans):
    unknown = [p for p in profile_ids if not planner.profile_exists(p)]
    if unknown:
        raise SelectionError(
            f"Unknown profile id(s): {_listed(unknown)}.",
            hints=(LIST,),
            unknown_profiles=shown(unknown),
        )
    installed = {plan.id for plan in plans}
    missing = [p for p in profile_ids if p not in installed]
    if missing:
        raise SelectionError(
            f"Profile(s) not installed on this site: {_listed(missing)}. "
            "Install an add-on before upgrading it.",
            not_installed=shown(missing),
        )
    wanted = set(profile_ids)
    return [plan for plan in plans if plan.id in wanted]


def _check_steps(step_ids, plans):
    steps = [step for plan in plans for step in plan.steps]
    known = {step.id for step in steps}
    unknown = [sid for sid in step_ids if sid not in known]
    if unknown:
        raise SelectionError(
            f"Unknown or not pending step id(s): {_listed(unknown)}.",
            hints=(LIST,),
            unknown_steps=shown(unknown),
        )
    done = {step.id for step in steps if step.done}
    already = [sid for sid in step_ids if sid in done]
    if already:
        raise SelectionError(
            f"Step(s) already run: {_listed(already)}.", already_done=shown(already)
        )
    wanted = set(step_ids)
    chosen = [plan for plan in plans if any(s.id in wanted for s in plan.steps)]
    for plan in chosen:
        if plan.downgraded:
            raise SelectionError(
                f"Profile {plan.id} is downgraded; its steps cannot run.",
                error_type="Downgraded",
                downgraded=[plan.id],
            )
    return chosen
