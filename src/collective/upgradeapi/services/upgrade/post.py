"""POST /<site>/@upgrade: run upgrades, all or nothing, or as a dry run."""

from collective.upgradeapi import api
from collective.upgradeapi.engine.plan import Planner
from collective.upgradeapi.engine.txn import kept_request_annotations
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import UpgradeFailed
from collective.upgradeapi.services.base import UpgradeService
from plone.protect.interfaces import IDisableCSRFProtection
from zope.interface import alsoProvides

import json


KEYS = ("dry_run", "dryRun", "profiles", "steps")


def _id_list(data, key):
    value = data[key]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise BadInput(
            f"'{key}' must be a non-empty list of ids"
            + (' or "all".' if key == "profiles" else ".")
        )
    return tuple(dict.fromkeys(value))


def parse_body(raw):
    """Check a POST body; return ``(selection, dry_run)`` or raise BadInput.

    :param raw: the request body (bytes or str; empty means ``{}``).
    :raises BadInput: on invalid JSON, a non-object, unknown keys or bad values.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not raw or not raw.strip():
        data = {}
    else:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise BadInput(f"The body is not valid JSON: {exc}.")
    if not isinstance(data, dict):
        raise BadInput(
            'The body must be a JSON object, for example {"dry_run": true}; '
            f"got {type(data).__name__}."
        )
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise BadInput(
            f"Unknown key(s): {', '.join(unknown)}. Allowed keys: dry_run "
            "(or its alias dryRun), profiles, steps.",
            unknown_keys=unknown,
        )
    flags = {key: data[key] for key in ("dry_run", "dryRun") if key in data}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise BadInput(
                f"'{key}' must be true or false, got {json.dumps(value)}.",
            )
    if len(set(flags.values())) > 1:
        raise BadInput("'dry_run' and 'dryRun' disagree; send one of them.")
    dry_run = next(iter(flags.values()), False)
    if "profiles" in data and "steps" in data:
        raise BadInput("Send either 'profiles' or 'steps', not both.")
    profiles = None
    if "profiles" in data:
        profiles = "all" if data["profiles"] == "all" else _id_list(data, "profiles")
    steps = _id_list(data, "steps") if "steps" in data else None
    return api.Selection(profiles=profiles, steps=steps), dry_run


class UpgradePost(UpgradeService):
    """``POST /plone/@upgrade`` with ``{"dry_run", "profiles", "steps"}``.

    Answers plone.restapi's keys (``@id``, ``dry_run``, ``report``,
    ``upgraded``, ``versions``) plus ``steps``, ``profiles``, ``committed``,
    ``duration``, ``run_id`` and ``run`` (the history entry's URL). A failing
    step: HTTP 500, nothing committed. Bad input: HTTP 400, nothing run.
    Another run holds the lock: HTTP 409.
    """

    def reply(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        selection, dry_run = parse_body(self.request.get("BODY"))
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
