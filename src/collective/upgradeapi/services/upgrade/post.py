"""POST /<site>/@upgrade: run upgrades, all or nothing, or as a dry run."""

from collective.upgradeapi import api
from collective.upgradeapi.engine.plan import Planner
from collective.upgradeapi.engine.txn import kept_request_annotations
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.errors import UpgradeFailed
from collective.upgradeapi.services.base import UpgradeSubPathService
from collective.upgradeapi.services.upgrade import body as request_body
from plone.protect.interfaces import IDisableCSRFProtection
from urllib.parse import parse_qs
from zope.interface import alsoProvides


class UpgradePost(UpgradeSubPathService):
    """``POST /plone/@upgrade`` with ``{"dry_run", "profiles", "steps"}``.

    Answers plone.restapi's keys (``@id``, ``dry_run``, ``report``,
    ``upgraded``, ``versions``) plus ``steps``, ``profiles``, ``committed``,
    ``duration``, ``run_id`` and ``run`` (the history entry's URL). A failing
    step: HTTP 500, nothing committed. Bad input: HTTP 400, nothing run.
    Another run holds the lock: HTTP 409.
    """

    def reply(self):
        if self.params:
            path = "/".join(self.params)
            raise UpgradeError(
                f"POST is not allowed on @upgrade/{path[:200]}: its sub-resources "
                "are read with GET (the lock is broken with DELETE).",
                error_type="MethodNotAllowed",
                status=405,
            )
        alsoProvides(self.request, IDisableCSRFProtection)
        query = parse_qs(self.request.get("QUERY_STRING", ""), keep_blank_values=True)
        selection, dry_run = request_body.parse(self.request.get("BODY"), query)
        result = None
        # What steps queue for after a successful request (cache purges) is
        # dropped unless the run committed.
        with kept_request_annotations(
            self.request, lambda: result is not None and result.committed
        ):
            result = api.upgrade(self.context, selection, dry_run=dry_run)
        body = self.result_body(result)
        failed = result.failed_step
        if failed is None:
            return body
        error = failed.error
        what = "The dry run" if result.dry_run else "The upgrade"
        raise UpgradeFailed(
            f"{what} failed at step {failed.task.title!r} (profile "
            f"{failed.task.profile}): {error['type']}: {error['message']} "
            "Nothing was committed: the site is as it was before this request.",
            failed_step=failed.as_dict(),
            **body,
        )

    def result_body(self, result):
        planner = Planner(self.context)
        core_id = planner.core_profile_id
        fs = planner.fs_version(core_id)
        instance = planner.instance_version(core_id)
        return {
            "@id": self.service_url,
            "dry_run": result.dry_run,
            "report": result.report,
            # plone.restapi: "core instance == fs"; here: of every profile run.
            "upgraded": result.upgraded if result.profiles else instance == fs,
            "versions": {"fs": fs, "instance": instance},
            "steps": [step.as_dict() for step in result.steps],
            "profiles": [profile.as_dict() for profile in result.profiles],
            "committed": result.committed,
            "duration": round(result.duration, 6),
            "run_id": result.run_id,
            "run": f"{self.service_url}/history/{result.run_id}",
        }
