"""The sub-resources of ``@upgrade``: status, history, lock.

Thin HTTP shaping around :mod:`collective.upgradeapi.status`,
:mod:`collective.upgradeapi.history` and :mod:`collective.upgradeapi.lock`.
"""

from collective.upgradeapi import history
from collective.upgradeapi import lock
from collective.upgradeapi.status import status
from collective.upgradeapi.store import records
from collective.upgradeapi.store import SideConnection
from plone.restapi.batching import HypermediaBatch


SUB_PATHS = "status, history, history/<id>, lock"
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


def not_found(service, params):
    path = "/".join(params)
    return service.error(
        404,
        "NotFound",
        f"There is no @upgrade/{path}. Available: @upgrade/{SUB_PATHS}.",
    )


def run_url(service, run_id):
    return f"{service.service_url}/history/{run_id}"


def _last_run(service, data):
    if data is None:
        return None
    return history.summary(data, run_url(service, data["id"]))


def reply_get(service, params):
    """Dispatch ``GET @upgrade/<params>``."""
    site_records = records(service.context)
    if params == ["status"]:
        answer = status(site_records)
        answer["last_run"] = _last_run(service, answer["last_run"])
        return {"@id": f"{service.service_url}/status", **answer}
    if params == ["history"]:
        return reply_history(service, site_records)
    if len(params) == 2 and params[0] == "history":
        return reply_run(service, site_records, params[1])
    if params == ["lock"]:
        return {
            "@id": f"{service.service_url}/lock",
            "lock": lock.describe(site_records),
        }
    return not_found(service, params)


def _batch_param(service, name, default, lowest):
    raw = service.request.form.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < lowest:
        raise ValueError(f"'{name}' must be an integer of at least {lowest}.")
    return value


def reply_history(service, site_records):
    """``GET @upgrade/history[?b_start=&b_size=]``: runs, newest first."""
    try:
        _batch_param(service, "b_start", 0, 0)
        _batch_param(service, "b_size", 25, 1)
    except ValueError as exc:
        return service.error(400, "BadRequest", str(exc))
    everything = history.runs(site_records)
    batch = HypermediaBatch(service.request, everything)
    answer = {
        "@id": batch.canonical_url,
        "items_total": batch.items_total,
        "items": [
            history.summary(data, run_url(service, data["id"])) for data in batch
        ],
    }
    links = batch.links
    if links:
        answer["batching"] = links
    return answer


def reply_run(service, site_records, raw_id):
    """``GET @upgrade/history/<id>``: one run with steps, logs and report."""
    data = None
    if raw_id.isdigit():
        data = history.get(site_records, int(raw_id))
    if data is None:
        return service.error(
            404,
            "NotFound",
            f"There is no upgrade run {raw_id!r} in the history. "
            "GET @upgrade/history lists the recorded runs.",
            run_id=raw_id,
        )
    return history.full(data, run_url(service, data["id"]))


def reply_delete(service, params):
    """``DELETE @upgrade/lock[?force=true]``: break the lock of a dead run."""
    if params != ["lock"]:
        return not_found(service, params)
    raw_force = service.request.form.get("force", "")
    if not isinstance(raw_force, str) or raw_force.lower() not in TRUE + FALSE:
        return service.error(400, "BadRequest", "'force' must be true or false.")
    force = raw_force.lower() in TRUE
    user = service.current_user()
    message = f"The upgrade lock was broken by {user}."

    def on_break(site_records, broken):
        progress = site_records.progress.value or {}
        if progress.get("token") == broken["token"]:
            history.abandon(site_records, progress.get("run_id"), message)
            site_records.progress.value = None

    side = SideConnection(service.context)
    try:
        broken = lock.break_lock(side, force=force, on_break=on_break)
    except lock.NoLock:
        return service.error(
            404, "NotFound", "There is no upgrade lock: no upgrade is running."
        )
    except lock.LockAlive as exc:
        return service.error(
            409,
            "UpgradeLocked",
            f"The upgrade lock held by {exc.lock['user']} is alive (see "
            "'lock'); it becomes stale after "
            f"{exc.lock['stale_after']} seconds without a heartbeat. Wait for "
            "the run to end, or add ?force=true if you are sure its process "
            "is gone.",
            lock=exc.lock,
        )
    finally:
        side.close()
    return {
        "@id": f"{service.service_url}/lock",
        "broken": True,
        "message": message,
        "lock": broken,
    }
