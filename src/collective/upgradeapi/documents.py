"""The JSON documents of the upgrade doors, built from the engine's objects.

The ``@upgrade`` services answer them over HTTP, ``plone-upgrade
--zope-conf`` prints them in-process: both build them here, so they cannot
drift apart. ``service_url`` is the URL of the site's ``@upgrade`` service,
the base of every ``@id``.
"""

from collective.upgradeapi import api
from collective.upgradeapi.engine.plan import Planner
from collective.upgradeapi.engine.selection import normalise_profile_id
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import shown
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.errors import UpgradeFailed
from collective.upgradeapi.tracking.store import iso
from plone.restapi.batching import HypermediaBatch


def builtin_upgrade_steps(plan):
    """The ``upgrade_steps`` mapping of plone.restapi, for the core profile.

    Grouped and ungrouped steps alike: ``{"<source>-<dest>": [{"id", "title"}]}``.
    """
    groups = {}
    for step in plan.steps if plan is not None else ():
        groups.setdefault(step.group, []).append({"id": step.id, "title": step.title})
    return groups


def checked_profile(planner, profile_id):
    """``profile_id`` without a ``profile-`` prefix, if it is installed.

    :param planner: a :class:`.engine.plan.Planner` of the site.
    :raises .errors.BadInput: the profile is unknown or not installed.
    """
    profile_id = normalise_profile_id(profile_id)
    if not planner.profile_exists(profile_id):
        raise BadInput(
            f"Unknown profile id: {shown([profile_id])[0]}.",
            unknown_profiles=shown([profile_id]),
        )
    if not planner.is_installed(profile_id):
        raise BadInput(
            f"Profile not installed on this site: {profile_id}.",
            not_installed=[profile_id],
        )
    return profile_id


def pending(site, service_url, profile=None):
    """What the site needs: the answer of ``GET @upgrade[?profile=ID]``.

    plone.restapi's keys (``@id``, ``upgrade_steps``, ``versions``) plus
    ``needs_upgrade`` and ``profiles``.

    :param profile: only this profile in ``profiles``.
    :raises .errors.BadInput: ``profile`` is unknown or not installed.
    """
    planner = Planner(site)
    profile_filter = None if profile is None else checked_profile(planner, profile)
    plans = planner.pending_profiles()
    core_plan = next((p for p in plans if p.id == planner.core_profile_id), None)
    listed = [p for p in plans if profile_filter in (None, p.id)]
    return {
        "@id": service_url,
        "upgrade_steps": builtin_upgrade_steps(core_plan),
        "versions": core_versions(planner),
        "needs_upgrade": any(plan.pending for plan in plans),
        "profiles": [plan.as_dict() for plan in listed],
    }


def core_versions(planner):
    """plone.restapi's ``versions``: the core profile's in the code (``fs``)
    and in the database (``instance``)."""
    core_id = planner.core_profile_id
    return {
        "fs": planner.fs_version(core_id),
        "instance": planner.instance_version(core_id),
    }


def run_url(service_url, run_id):
    """The URL of a run in the history."""
    return f"{service_url}/history/{run_id}"


def run_result(site, result, service_url):
    """The answer of ``POST @upgrade`` for the :class:`.engine.results.RunResult`.

    plone.restapi's keys (``@id``, ``dry_run``, ``report``, ``upgraded``,
    ``versions``) plus ``steps``, ``profiles``, ``committed``, ``commit`` (what
    one transaction held), ``commits`` (each committed transaction with its
    steps), ``duration``, ``run_id``, ``run`` and ``writes_held`` (how long
    other writes were held, see :mod:`.doors.hold`); ``changes`` (the run's,
    and each step's) when the run recorded them.
    """
    versions = core_versions(Planner(site))
    core_upgraded = versions["instance"] == versions["fs"]
    return {
        "@id": service_url,
        "dry_run": result.dry_run,
        "report": result.report,
        # plone.restapi: "core instance == fs"; here: of every profile run.
        "upgraded": result.upgraded if result.profiles else core_upgraded,
        "versions": versions,
        "steps": [_step(step, result) for step in result.steps],
        "profiles": [profile.as_dict() for profile in result.profiles],
        "committed": result.committed,
        "commit": result.commit,
        "commits": result.commits,
        "duration": round(result.duration, 6),
        "run_id": result.run_id,
        "run": run_url(service_url, result.run_id),
        **({} if result.changes is None else {"changes": result.changes}),
        "writes_held": getattr(result, "writes_held", None),
    }


def _step(step, result):
    """A step of the run's answer, with its changes when the run recorded them
    (a step that did not run changed nothing)."""
    data = step.as_dict()
    if result.changes is not None:
        data["changes"] = step.changes or {}
    return data


def run_failure(result, body):
    """The error of a run whose step failed, or ``None`` if none failed.

    :param body: the run's answer (:func:`run_result`); the error carries it.
    :returns: an :class:`.errors.UpgradeFailed` (500) with ``failed_step``.
    """
    failed = result.failed_step
    if failed is None:
        return None
    error = failed.error
    what = "The dry run" if result.dry_run else "The upgrade"
    kept = "Nothing was committed: the site is as it was before this request."
    if result.commits:
        units = ", ".join(commit["unit"] for commit in result.commits)
        kept = (
            f"The failing {result.commit} was aborted; what was committed before "
            f"it stays (see 'commits': {units}). Run again to continue from there."
        )
    return UpgradeFailed(
        f"{what} failed at step {failed.task.title!r} (profile "
        f"{failed.task.profile}): {error['type']}: {error['message']} {kept}",
        failed_step=failed.as_dict(),
        **body,
    )


def run_summary(data, service_url):
    """A run (:func:`.api.get_run`) as the history listing shows it."""
    finished = data["finished"]
    return {
        "@id": run_url(service_url, data["id"]),
        "id": data["id"],
        "user": data["user"],
        "started": iso(data["started"]),
        "finished": iso(finished),
        "duration": None if finished is None else round(finished - data["started"], 6),
        "dry_run": data["dry_run"],
        "result": data["result"],
        "committed": data["committed"],
        "selection": data["selection"],
        "profiles": data["profiles"],
        "steps": [
            {
                **{key: step[key] for key in ("id", "profile", "title", "status")},
                "committed": step.get("committed", False),
            }
            for step in data["steps"]
        ],
        "error": data["error"],
    }


def history_listing(site, service_url, request):
    """The answer of ``GET @upgrade/history``: runs, newest first, batched.

    :param request: its ``b_start`` and ``b_size`` choose the batch; its
        ``ACTUAL_URL`` and ``QUERY_STRING`` make the ``@id`` and the
        ``batching`` links (plone.restapi's batching).
    """
    batch = HypermediaBatch(request, api.runs(site))
    answer = {
        "@id": batch.canonical_url,
        "items_total": batch.items_total,
        "items": [run_summary(data, service_url) for data in batch],
    }
    links = batch.links
    if links:
        answer["batching"] = links
    return answer


def find_run(site, raw_id):
    """The recorded run of id ``raw_id`` as given (a string of digits, or an
    int), or ``None``: no such run, or not an id."""
    raw_id = str(raw_id)
    number = raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 12
    return api.get_run(site, int(raw_id)) if number else None


def history_entry(site, service_url, raw_id):
    """The answer of ``GET @upgrade/history/<id>``: one run in full.

    :param raw_id: the run id as given (see :func:`find_run`).
    :raises .errors.UnknownResource: there is no such run (404).
    """
    raw_id = str(raw_id)
    data = find_run(site, raw_id)
    if data is None:
        raise UnknownResource(
            f"There is no upgrade run {raw_id!r} in the history. "
            "GET @upgrade/history lists the recorded runs.",
            run_id=raw_id,
        )
    return {
        **run_summary(data, service_url),
        "steps": data["steps"],
        "steps_total": data["steps_total"],
        "report": data["report"],
        "transaction": data.get("transaction"),
        "cancel_requested": data.get("cancel_requested"),
        "writes_held": data.get("writes_held"),
        # The change report, when the run recorded one.
        **({"changes": data["changes"]} if data.get("changes") is not None else {}),
    }


def unlocked(site, service_url, user, force):
    """What ``DELETE @upgrade/lock[?force=true]`` answers (see
    :func:`.api.break_lock`), with what happened in words."""
    done = api.break_lock(site, user, force=force)
    if done["broken"]:
        message = (
            f"The upgrade lock was broken by {user}; its run is recorded as "
            "abandoned. A new run may start."
        )
    else:
        message = _cancel_message(done["lock"], user)
    return {"@id": f"{service_url}/lock", **done, "message": message}


def cancelled(site, service_url, user):
    """What ``DELETE @upgrade/run`` answers (see :func:`.api.cancel`)."""
    done = api.cancel(site, user)
    return {
        "@id": f"{service_url}/run",
        "cancel_requested": done["lock"]["cancel_requested"],
        "message": _cancel_message(done["lock"], user),
        **done,
    }


def _cancel_message(shown, user):
    request = shown["cancel_requested"]
    asked = (
        f"{user} asked"
        if request["user"] == user
        else f"{request['user']} already asked"
    )
    message = (
        f"{asked} the run of {shown['user']} to cancel. It stops at its next "
        "step boundary, commits nothing more and releases the lock; follow it "
        "with GET @upgrade/status."
    )
    if shown["committing"]:
        message += (
            " It is committing a unit now: that unit stays committed, and the "
            "run stops before its next step (if it has one)."
        )
    if shown["stale"]:
        message += (
            " Its holder looks dead (see 'lock'): break the lock with "
            "DELETE @upgrade/lock."
        )
    return message
