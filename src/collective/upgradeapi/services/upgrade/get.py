"""GET /<site>/@upgrade: what the site needs, core and every add-on profile.

Sub-paths: ``@upgrade/status``, ``@upgrade/history``,
``@upgrade/history/<id>`` and ``@upgrade/lock`` (see :mod:`.runs`).
"""

from collective.upgradeapi import documents
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import shown
from collective.upgradeapi.services.base import UpgradeSubPathService
from collective.upgradeapi.services.upgrade import runs
from urllib.parse import parse_qs


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

    def profile_param(self):
        """The ``profile`` parameter, or ``None``; no other parameter is taken."""
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
        profile = form.get("profile") or None
        if profile is None:
            return None
        if not isinstance(profile, str) or len(raw.get("profile", ())) > 1:
            raise BadInput("Give one profile id.")
        return profile

    def reply_pending(self):
        return documents.pending(self.context, self.service_url, self.profile_param())
