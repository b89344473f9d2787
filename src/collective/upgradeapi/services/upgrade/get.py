"""GET /<site>/@upgrade: what the site needs, core and every add-on profile.

Sub-paths: ``@upgrade/status``, ``@upgrade/history``,
``@upgrade/history/<id>`` and ``@upgrade/lock`` (see :mod:`.runs`).
"""

from collective.upgradeapi.engine.plan import Planner
from collective.upgradeapi.engine.selection import normalise_profile_id
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import shown
from collective.upgradeapi.services.base import UpgradeSubPathService
from collective.upgradeapi.services.upgrade import runs
from urllib.parse import parse_qs


def builtin_upgrade_steps(plan):
    """The ``upgrade_steps`` mapping of plone.restapi, for the core profile.

    Grouped and ungrouped steps alike: ``{"<source>-<dest>": [{"id", "title"}]}``.
    """
    groups = {}
    if plan is None:
        return groups
    for step in plan.steps:
        groups.setdefault(step.group, []).append({"id": step.id, "title": step.title})
    return groups


class UpgradeGet(UpgradeSubPathService):
    """``GET /plone/@upgrade[?profile=<profile id>]``

    Answers plone.restapi's keys (``@id``, ``upgrade_steps``, ``versions``)
    plus ``needs_upgrade`` and ``profiles``: every installed profile with
    pending steps (or recorded newer than its code), core first, in run order.

    ``GET /plone/@upgrade/status``, ``/history``, ``/history/<id>`` and
    ``/lock``: the live status, the history of runs, one run, the lock.
    """

    def reply(self):
        if self.params:
            return runs.reply_get(self, self.params)
        return self.reply_pending()

    def profile_filter(self, planner):
        """The ``profile`` parameter, checked; ``None`` when not given."""
        form = self.request.form
        raw = parse_qs(self.request.get("QUERY_STRING", ""), keep_blank_values=True)
        # Zope's converters (``:record``, ``:list``...) are not taken either.
        unknown = sorted((set(raw) | {key for key in form if key}) - {"profile"})
        if unknown:
            raise BadInput(
                f"Unknown parameter(s): {', '.join(shown(unknown))}. GET "
                "@upgrade takes one: profile.",
                unknown_parameters=shown(unknown),
            )
        profile_filter = form.get("profile") or None
        if profile_filter is None:
            return None
        if not isinstance(profile_filter, str) or len(raw.get("profile", ())) > 1:
            raise BadInput("Give one profile id.")
        profile_filter = normalise_profile_id(profile_filter)
        if not planner.profile_exists(profile_filter):
            raise BadInput(
                f"Unknown profile id: {shown([profile_filter])[0]}.",
                unknown_profiles=shown([profile_filter]),
            )
        if not planner.is_installed(profile_filter):
            raise BadInput(
                f"Profile not installed on this site: {profile_filter}.",
                not_installed=[profile_filter],
            )
        return profile_filter

    def reply_pending(self):
        planner = Planner(self.context)
        profile_filter = self.profile_filter(planner)
        plans = planner.pending_profiles()
        core_id = planner.core_profile_id
        core_plan = next((p for p in plans if p.id == core_id), None)
        shown = [p for p in plans if profile_filter in (None, p.id)]
        return {
            "@id": self.service_url,
            "upgrade_steps": builtin_upgrade_steps(core_plan),
            "versions": {
                "fs": planner.fs_version(core_id),
                "instance": planner.instance_version(core_id),
            },
            "needs_upgrade": any(plan.pending for plan in plans),
            "profiles": [plan.as_dict() for plan in shown],
        }
