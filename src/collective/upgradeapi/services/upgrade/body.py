"""The POST body of ``@upgrade``: checked strictly, before anything runs.

Every key is known, typed and single; nothing in the query string is taken
silently. What fails answers 400 (:class:`collective.upgradeapi.errors.BadInput`)
and nothing runs.
"""

from collective.upgradeapi.engine.runner import COMMIT_MODES
from collective.upgradeapi.engine.selection import normalise_profile_id
from collective.upgradeapi.engine.selection import Selection
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import shown
from collective.upgradeapi.services.base import UpgradeService
from collective.upgradeapi.services.errors import render
from plone.rest.errors import ErrorHandling
from plone.rest.interfaces import IAPIRequest
from zope.component import adapter

import json


KEYS = (
    "dry_run",
    "dryRun",
    "profiles",
    "steps",
    "commit",
    "mark_done",
    "stamp",
    "changes",
    "hold_writes",
)
FLAGS = ("dry_run", "dryRun")


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise BadInput(
                f"The key {shown([key])[0]!r} is given twice in the body; send it "
                "once.",
                duplicate_keys=shown([key]),
            )
        seen[key] = value
    return seen


def load(raw):
    """The body as a dict (``{}`` when empty).

    :param raw: the request body (bytes or str).
    :raises BadInput: not JSON, nested too deep, a duplicate key, not an object.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not raw or not raw.strip():
        return {}
    try:
        data = json.loads(raw, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise BadInput("The body is nested too deeply to be an @upgrade request.")
    except ValueError as exc:
        raise BadInput(f"The body is not valid JSON: {str(exc)[:200]}.")
    if not isinstance(data, dict):
        raise BadInput(
            'The body must be a JSON object, for example {"dry_run": true}; '
            f"got {type(data).__name__}."
        )
    return data


def _flag(data, key, expected="true or false"):
    """The boolean ``data[key]``, ``None`` when it is not given."""
    value = data.get(key)
    if key in data and not isinstance(value, bool):
        raise BadInput(f"'{key}' must be {expected}, got {json.dumps(value)[:100]}.")
    return value


def _dry_run(data):
    flags = {key: _flag(data, key) for key in FLAGS if key in data}
    if len(set(flags.values())) > 1:
        raise BadInput("'dry_run' and 'dryRun' disagree; send one of them.")
    return next(iter(flags.values()), False)


def _id_list(data, key, profiles=False):
    """The ids of ``data[key]``, once each; profile ids without ``profile-``."""
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
    if profiles:
        value = [normalise_profile_id(item) for item in value]
    return tuple(dict.fromkeys(value))


def selection(data):
    """The :class:`.engine.selection.Selection` a checked body asks for."""
    if "profiles" in data and "steps" in data:
        raise BadInput("Send either 'profiles' or 'steps', not both.")
    profiles = None
    if "profiles" in data:
        all_ = data["profiles"] == "all"
        profiles = "all" if all_ else _id_list(data, "profiles", profiles=True)
    steps = _id_list(data, "steps") if "steps" in data else None
    return Selection(profiles=profiles, steps=steps)


def _options(data, selection):
    """``{"commit", "mark_done", "changes", "hold_writes"}`` from a checked
    body."""
    commit = data.get("commit", "run")
    if commit not in COMMIT_MODES:
        raise BadInput(
            f"'commit' must be one of {', '.join(COMMIT_MODES)}; got "
            f"{json.dumps(commit)[:100]}."
        )
    mark_done = bool(_flag(data, "mark_done"))
    if mark_done and (selection.steps is None and selection.profiles in (None, "all")):
        raise BadInput(
            "'mark_done' records chosen steps as done without running them: "
            "name them with 'steps', or their profiles with 'profiles' (a list)."
        )
    return {
        "commit": commit,
        "mark_done": mark_done,
        "changes": _flag(data, "changes"),
        "hold_writes": _flag(
            data,
            "hold_writes",
            "true (hold other writes for the whole run) or false (never hold "
            "them), or left out for the site's default",
        ),
    }


def parse(raw, query=()):
    """Check a POST body; return the arguments of the call it asks for:
    :func:`.api.stamp`'s (``{"profile_ids"}``) for ``{"stamp": [...]}``,
    else :func:`.api.upgrade`'s (``{"selection", "dry_run", "commit",
    "mark_done", "changes", "hold_writes"}``).

    :param raw: the request body (bytes or str; empty means ``{}``).
    :param query: names of the parameters given in the query string: there
        are none for POST, so any is refused (a body sent form-encoded is
        still read as JSON).
    :raises BadInput: on invalid JSON, a non-object, unknown, duplicate or
        misplaced keys, or bad values.
    """
    if query:
        names = shown(sorted(query))
        raise BadInput(
            f"POST @upgrade takes no query-string or form parameters; got: "
            f"{', '.join(names)}. Send them in the JSON body, for example "
            '{"dry_run": true}.',
            unknown_parameters=names,
        )
    data = load(raw)
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        names = shown(unknown)
        raise BadInput(
            f"Unknown key(s): {', '.join(names)}. Allowed keys: dry_run "
            "(or its alias dryRun), profiles, steps, commit, mark_done, changes, "
            "hold_writes.",
            unknown_keys=names,
        )
    if "stamp" in data:
        return {"profile_ids": _stamp(data)}
    chosen = selection(data)
    return {"selection": chosen, "dry_run": _dry_run(data), **_options(data, chosen)}


def _stamp(data):
    """The profile ids of ``{"stamp": [...]}``, which goes alone."""
    others = sorted(set(data) - {"stamp"})
    if others:
        raise BadInput(
            f"'stamp' goes alone; remove {', '.join(shown(others))}.",
        )
    return _id_list(data, "stamp", profiles=True)


@adapter(RecursionError, IAPIRequest)
class DeepBodyView(ErrorHandling):
    """A JSON body too deep for plone.restapi's token plugin, which decodes it
    while authenticating and lets ``RecursionError`` through: 400 when the
    request goes to an ``@upgrade`` service and :func:`load` refuses the body;
    plone.rest's answer otherwise, as without this package."""

    def __call__(self):
        if isinstance(self.request.get("PUBLISHED"), UpgradeService):
            try:
                load(self.request.get("BODY"))
            except BadInput as error:
                return render(error, self.request)
        return super().__call__()
