"""The sub-resources of ``@upgrade``: status, history, lock, the running run.

Thin HTTP shaping around :mod:`collective.upgradeapi.api`.
"""

from collective.upgradeapi import api
from collective.upgradeapi import documents
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.errors import WrongMethod
from collective.upgradeapi.services.errors import shown_lock
from collective.upgradeapi.tracking import history


SUB_PATHS = "status, history, history/<id>, lock and run (DELETE: cancel)"
#: The methods each resource under ``@upgrade`` answers: its ``Allow``.
ALLOWED = {
    "": ("GET", "POST"),
    "status": ("GET",),
    "history": ("GET",),
    "history/<id>": ("GET",),
    "lock": ("GET", "DELETE"),
    "run": ("DELETE",),
}
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


def not_found(params):
    path = "/".join(params)
    return UnknownResource(
        f"There is no @upgrade/{path}. Available: @upgrade/{SUB_PATHS}."
    )


def refusal(method, params):
    """What ``method`` on ``@upgrade/<params>`` gets when that resource does
    not answer it: 404 (no such resource) or 405 (with ``Allow``)."""
    history_id = params[:1] == ["history"] and len(params) == 2
    allow = ALLOWED.get("history/<id>" if history_id else "/".join(params))
    if allow is None:
        return not_found(params)
    return WrongMethod(method, "/".join(["@upgrade", *params]), allow)


def _last_run(service, data):
    if data is None:
        return None
    return history.summary(data, documents.run_url(service.service_url, data["id"]))


def reply_get(service, params):
    """Dispatch ``GET @upgrade/<params>``."""
    site = service.context
    if params == ["status"]:
        answer = api.status(site)
        answer["last_run"] = _last_run(service, answer["last_run"])
        return {"@id": f"{service.service_url}/status", **answer}
    if params == ["history"]:
        return reply_history(service)
    if len(params) == 2 and params[0] == "history":
        return reply_run(service, params[1])
    if params == ["lock"]:
        lock = shown_lock(api.lock_info(site))
        return {"@id": f"{service.service_url}/lock", "lock": lock}
    raise refusal("GET", params)


def _batch_param(service, name, lowest):
    raw = service.request.form.get(name)
    if raw is None:
        return
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < lowest:
        raise BadInput(f"'{name}' must be an integer of at least {lowest}.")


def reply_history(service):
    """``GET @upgrade/history[?b_start=&b_size=]``: runs, newest first."""
    _batch_param(service, "b_start", 0)
    _batch_param(service, "b_size", 1)
    return documents.history_listing(
        service.context, service.service_url, service.request
    )


def reply_run(service, raw_id):
    """``GET @upgrade/history/<id>``: one run with steps, logs and report."""
    return documents.history_entry(service.context, service.service_url, raw_id)


def reply_delete(service, params):
    """Dispatch ``DELETE @upgrade/<params>``: ``lock`` or ``run``."""
    if params == ["lock"]:
        return reply_break(service)
    if params == ["run"]:
        return reply_cancel(service)
    raise refusal("DELETE", params)


def reply_break(service):
    """``DELETE @upgrade/lock[?force=true]``: break the lock of a dead run.

    200 ``{"@id", "broken": true, "message", "lock"}`` when it was stale and
    is broken; 202 with ``"broken": false`` when ``force`` turned the break
    of a live lock into a cancel request.
    """
    raw_force = service.request.form.get("force", "")
    if not isinstance(raw_force, str) or raw_force.lower() not in TRUE + FALSE:
        raise BadInput("'force' must be true or false.")
    done = documents.unlocked(
        service.context,
        service.service_url,
        service.current_user(),
        raw_force.lower() in TRUE,
    )
    if not done["broken"]:
        service.request.response.setStatus(202)
    return {**done, "lock": shown_lock(done["lock"])}


def reply_cancel(service):
    """``DELETE @upgrade/run``: ask the running run to cancel.

    202 ``{"@id", "cancel_requested", "message", "lock"}``: the run stops at
    its next step boundary. No run: 404.
    """
    done = documents.cancelled(
        service.context, service.service_url, service.current_user()
    )
    service.request.response.setStatus(202)
    return {**done, "lock": shown_lock(done["lock"])}
