"""POST /<site>/@upgrade: run upgrades, all or nothing, or as a dry run."""

from collective.upgradeapi import api
from collective.upgradeapi.services.base import answer_run
from collective.upgradeapi.services.base import UpgradeService
from collective.upgradeapi.services.upgrade import body as request_body
from urllib.parse import parse_qs


class UpgradePost(UpgradeService):
    """``POST /plone/@upgrade`` with ``{"dry_run", "profiles", "steps", "commit",
    "mark_done", "changes", "hold_writes"}``, or ``{"stamp": [...]}``.

    Answers plone.restapi's keys (``@id``, ``dry_run``, ``report``,
    ``upgraded``, ``versions``) plus ``steps``, ``profiles``, ``committed``,
    ``duration``, ``run_id``, ``run`` (the history entry's URL) and
    ``writes_held``, and ``changes`` (per step and for the run) for a dry
    run, or when ``"changes": true`` asks for it on a real run. A failing
    step: HTTP 500, nothing committed. Bad input: HTTP 400, nothing run.
    Another run holds the lock: HTTP 409.
    """

    def reply(self):
        query = parse_qs(self.request.get("QUERY_STRING", ""), keep_blank_values=True)
        given = request_body.parse(self.request.get("BODY"), query)
        run = api.stamp if "profile_ids" in given else api.upgrade
        return answer_run(
            self.request, self.context, lambda: run(self.context, **given)
        )
