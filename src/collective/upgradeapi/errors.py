"""One exception for every error answer: an HTTP status, a type and a message.

Raised anywhere (engine, tracking, services, doors) and rendered in one place,
:func:`collective.upgradeapi.services.errors.render`. The message says what
happened in words no door owns; what to do next is given as :attr:`hints`
(:data:`FOLLOW`, :data:`CANCEL`, :data:`BREAK`, :data:`LIST`), which each door
says in its own terms (an HTTP request, a CLI command). A refusal (4xx) is
answered by the service that met it and stays out of the error log; anything
else goes through Zope's failure path (the transaction is aborted,
``IPubFailure`` subscribers and the error log see it, no after-success hook
runs).
"""

#: At most this many ids, and this many characters of each, are echoed back.
SHOWN_IDS = 20
SHOWN_CHARS = 200


def shown(ids):
    """``ids`` as an answer may echo them: bounded in number and length.

    :returns: a list of at most :data:`SHOWN_IDS` strings (plus one saying how
        many more there were), each cut to :data:`SHOWN_CHARS` characters.
    """
    ids = [str(item) for item in ids]
    cut = [
        item if len(item) <= SHOWN_CHARS else f"{item[:SHOWN_CHARS]}... (cut)"
        for item in ids[:SHOWN_IDS]
    ]
    if len(ids) > SHOWN_IDS:
        cut.append(f"... and {len(ids) - SHOWN_IDS} more")
    return cut


class UpgradeError(Exception):
    """An error with an answer: ``{"type", "message", **details}``.

    :param message: what went wrong and what to do.
    :param error_type: the ``type`` key; the class's :attr:`error_type` if
        omitted.
    :param status: the HTTP status; the class's :attr:`status` if omitted.
    :param hints: what can be done next (:data:`FOLLOW`...).
    :param details: extra keys of the body.

    :attr:`headers` are set on the response with the status.
    """

    status = 500
    error_type = "BadRequest"

    def __init__(self, message, error_type=None, status=None, hints=(), **details):
        super().__init__(message)
        self.message = message
        self.hints = tuple(hints)
        if error_type is not None:
            self.error_type = error_type
        if status is not None:
            self.status = status
        self.details = details
        self.headers = {}

    def body(self):
        """The JSON answer."""
        return {"type": self.error_type, "message": self.message, **self.details}


class BadInput(UpgradeError):
    """A request that cannot be served as sent: 400, nothing runs."""

    status = 400


class UnknownResource(UpgradeError):
    """No such sub-resource: 404 (not named ``NotFound``: Zope's publisher
    turns exceptions of that name into its own)."""

    status = 404
    error_type = "NotFound"


#: What can be done next (:attr:`UpgradeError.hints`): follow the running
#: run, cancel it, break a dead run's lock, list what is pending.
FOLLOW = "follow"
CANCEL = "cancel"
BREAK = "break"
LIST = "list"


def started_by(lock):
    """Whose run holds ``lock``: "An upgrade started by admin"."""
    what = "A dry run" if lock.get("dry_run") else "An upgrade"
    return f"{what} started by {lock.get('user')}"


class Locked(UpgradeError):
    """Another run holds the site's upgrade lock: 409.

    Built from the lock as :meth:`.tracking.state.RunState.lock` shows it.
    """

    status = 409
    error_type = "UpgradeLocked"

    @classmethod
    def held(cls, lock):
        """For a run that finds the lock held: who holds it, since when,
        whether it looks alive and what to do."""
        if not lock["stale"]:
            return cls(
                f"{started_by(lock)} is running on this site (see 'lock': its process, "
                "since when, its last heartbeat); one upgrade runs at a time. "
                "Try again when it has ended.",
                hints=(FOLLOW, CANCEL),
                lock=lock,
            )
        if lock["stale_reason"] == "process_gone":
            why = "its process is gone (see 'lock')"
        else:
            why = (
                f"it gave no sign of life for more than {lock['stale_after']} "
                "seconds (see 'lock'): its process probably died"
            )
        return cls(
            f"{started_by(lock)} holds the upgrade lock, but {why}.",
            hints=(BREAK,),
            lock=lock,
        )

    @classmethod
    def alive(cls, lock):
        """For a request to break a lock that is alive."""
        return cls(
            f"The upgrade lock held by {lock['user']} is alive (see 'lock') and "
            "is not broken: a second run would overlap its run. Wait for the "
            "run to end, or cancel it: it stops at its next step and releases "
            f"the lock. It becomes stale after {lock['stale_after']} seconds "
            "without a heartbeat.",
            hints=(FOLLOW, CANCEL),
            lock=lock,
        )


class TooLate(UpgradeError):
    """A run cannot be cancelled any more: it is committing its work (409)."""

    status = 409
    error_type = "TooLate"


class UpgradeFailed(UpgradeError):
    """A step failed; the answer carries the run: 500."""

    status = 500
    error_type = "UpgradeFailed"


class WrongMethod(UpgradeError):
    """A method the resource does not answer: 405, with ``Allow`` (not named
    ``MethodNotAllowed``: Zope's publisher turns exceptions of that name into
    its own).

    :param method: the request's method.
    :param path: the resource, as the answer names it (``@upgrade/lock``).
    :param allow: the methods it answers, as a sequence.
    """

    status = 405
    error_type = "MethodNotAllowed"

    def __init__(self, method, path, allow):
        allowed = ", ".join(allow)
        super().__init__(
            f"{method[:20]} is not allowed on {path[:200]}: it answers {allowed} "
            "only. Nothing was done.",
            allow=list(allow),
        )
        self.headers = {"Allow": allowed}


class NotAcceptable(UpgradeError):
    """A request for the API that does not ask for JSON: 406."""

    status = 406
    error_type = "NotAcceptable"


class ReservedName(UpgradeError):
    """Content given the name of a REST service of the site root: 400.

    :param name: the id asked for.
    :param methods: the methods of the services of that name (``GET``...).
    """

    status = 400
    error_type = "BadRequest"

    def __init__(self, name, methods):
        name = shown([name])[0]
        super().__init__(
            f"{name!r} cannot be the id of content at the site root: it is the "
            f"name of this site's REST service ({', '.join(methods)} {name}), "
            "which content of that name would hide. Nothing was added, copied, "
            "moved or renamed. Choose another id.",
            id=name,
        )
