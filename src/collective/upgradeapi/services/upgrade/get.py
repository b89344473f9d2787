"""GET /<site>/@upgrade: what the site needs, core and every add-on profile;
its sub-resources: the status, the history, one run, the lock."""

from collective.upgradeapi import api
from collective.upgradeapi import documents
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import shown
from collective.upgradeapi.services.base import service_url
from collective.upgradeapi.services.base import UpgradeService
from collective.upgradeapi.services.errors import shown_lock
from urllib.parse import parse_qs


class UpgradeGet(UpgradeService):
    """``GET /plone/@upgrade[?profile=<profile id>]``

    Answers plone.restapi's keys (``@id``, ``upgrade_steps``, ``versions``)
    plus ``needs_upgrade`` and ``profiles``: every installed profile with
    pending steps (or recorded newer than its code), core first, in run order.

    ``GET /plone/@upgrade/status``, ``/history[?b_start=&b_size=]`` (runs,
    newest first), ``/history/<id>`` (one run with steps, logs and report)
    and ``/lock``: the live status, the history of runs, one run, the lock.
    """

    def reply(self):
        site, url, params = self.context, service_url(self.context), self.params
        if not params:
            return documents.pending(site, url, self.profile_param())
        if params == ["status"]:
            answer = api.status(site)
            last = answer["last_run"]
            summary = None if last is None else documents.run_summary(last, url)
            return {"@id": f"{url}/status", **answer, "last_run": summary}
        if params == ["history"]:
            self.batch_param("b_start", 0)
            self.batch_param("b_size", 1)
            return documents.history_listing(site, url, self.request)
        if len(params) == 2:  # history/<id>
            return documents.history_entry(site, url, params[1])
        return {"@id": f"{url}/lock", "lock": shown_lock(api.lock_info(site))}

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

    def batch_param(self, name, lowest):
        """Refuse a batching parameter that is not an integer >= ``lowest``."""
        raw = self.request.form.get(name)
        if raw is None:
            return
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or value < lowest:
            raise BadInput(f"'{name}' must be an integer of at least {lowest}.")
