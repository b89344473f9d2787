"""POST /<site>/@upgrade: run upgrades, all or nothing, or as a dry run."""

from collective.upgradeapi import history
from collective.upgradeapi.lock import Locked
from collective.upgradeapi.plan import Planner
from collective.upgradeapi.run import Runner
from collective.upgradeapi.run import Selection
from collective.upgradeapi.run import SelectionError
from collective.upgradeapi.services.base import BadInput
from collective.upgradeapi.services.base import UpgradeService
from collective.upgradeapi.status import RunTracker
from plone.protect.interfaces import IDisableCSRFProtection
from transaction.interfaces import TransientError
from zope.interface import alsoProvides

import json
import transaction
import uuid


KEYS = ("dry_run", "dryRun", "profiles", "steps")

# Kept in the WSGI environment, which Zope's publisher hands to a retried
# request (after a write conflict): who holds the lock, which history entry
# this request recorded, and the answer once the run is over.
TOKEN = "collective.upgradeapi.token"
RUN_ID = "collective.upgradeapi.run_id"
ANSWER = "collective.upgradeapi.answer"


def retry_environ(request):
    """The environment mapping that survives a retry of ``request``."""
    return getattr(request, "_orig_env", None) or request.environ


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
    return Selection(profiles=profiles, steps=steps), dry_run


class UpgradePost(UpgradeService):
    """``POST /plone/@upgrade`` with ``{"dry_run", "profiles", "steps"}``.

    Answers plone.restapi's keys (``@id``, ``dry_run``, ``report``,
    ``upgraded``, ``versions``) plus ``steps``, ``profiles``, ``committed`` and
    ``duration``. A failing step: HTTP 500, nothing committed. Bad input: HTTP
    400, nothing run.
    """

    def reply(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        environ = retry_environ(self.request)
        if ANSWER in environ:
            # A retry of a request whose run is over: never run it twice.
            status, body = environ[ANSWER]
            self.request.response.setStatus(status)
            return body
        try:
            selection, dry_run = parse_body(self.request.get("BODY"))
        except BadInput as exc:
            return self.error(400, exc.error_type, exc.message, **exc.details)
        runner = Runner(self.context, dry_run=dry_run)
        retried = TOKEN in environ
        tracker = RunTracker(
            self.context,
            environ.setdefault(TOKEN, uuid.uuid4().hex),
            self.current_user(),
            dry_run,
            {
                "profiles": selection.profiles
                if selection.profiles in (None, "all")
                else list(selection.profiles),
                "steps": list(selection.steps) if selection.steps else None,
            },
            run_id=environ.get(RUN_ID),
        )
        try:
            runner.check(selection)
        except SelectionError as exc:
            if retried:
                # The lock kept for this retry must not outlive it.
                tracker.finish(None, history.ERROR, error=_error_summary(exc))
            return self.error(400, exc.error_type, exc.message, **exc.details)
        try:
            tracker.acquire()
        except Locked as exc:
            return self.locked(exc.lock)
        status, body = self.run_tracked(runner, tracker, selection)
        self.request.response.setStatus(status)
        return body

    def locked(self, lock):
        who = "a dry run" if lock["dry_run"] else "an upgrade"
        message = (
            f"{who.capitalize()} started by {lock['user']} is running on this "
            "site (see 'lock'); one upgrade runs at a time. Follow it with "
            "GET @upgrade/status and try again when it has ended."
        )
        if lock["stale"]:
            message = (
                f"{who.capitalize()} started by {lock['user']} holds the "
                "upgrade lock but gave no sign of life for more than "
                f"{lock['stale_after']} seconds: its process probably died. "
                "A Manager can break the lock with DELETE @upgrade/lock."
            )
        return self.error(409, "UpgradeLocked", message, lock=lock)

    def run_tracked(self, runner, tracker, selection):
        """Run with the lock held; release it whatever happens.

        :returns: ``(HTTP status, body)``.
        """
        environ = retry_environ(self.request)
        try:
            # Start from the newest state: a run that ended just before the
            # lock was ours is visible, so nothing runs twice.
            transaction.abort()
            transaction.begin()
            runner.listeners.append(tracker)
            result = runner.run(selection)
        except SelectionError as exc:
            tracker.finish(None, history.ERROR, error=_error_summary(exc))
            body = self.error(400, exc.error_type, exc.message, **exc.details)
            return 400, body
        except TransientError as exc:
            environ[RUN_ID] = tracker.run_id
            if self.request.supports_retry():
                # Zope's publisher runs this request again, with the same
                # token: it takes the lock over and reuses the history entry.
                tracker.suspend()
            else:
                tracker.finish(None, history.ERROR, error=_error_summary(exc))
            raise
        except BaseException as exc:
            tracker.finish(None, history.ERROR, error=_error_summary(exc))
            raise
        answer = self.answer(result)
        # From here on, a retry of this request answers the same.
        environ[ANSWER] = answer
        tracker.finish(result)
        return answer

    def answer(self, result):
        """``(HTTP status, body)`` for the result of a run."""
        body = self.result_body(result)
        failed = result.failed_step
        if failed is None:
            return 200, body
        error = failed.error
        what = "The dry run" if result.dry_run else "The upgrade"
        message = (
            f"{what} failed at step {failed.task.title!r} (profile "
            f"{failed.task.profile}): {error['type']}: {error['message']} "
            "Nothing was committed: the site is as it was before this request."
        )
        return 500, self.error(
            500, "UpgradeFailed", message, failed_step=failed.as_dict(), **body
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
        }


def _error_summary(exc):
    return {
        "type": exc.__class__.__name__,
        "message": getattr(exc, "message", None) or str(exc) or repr(exc),
    }
