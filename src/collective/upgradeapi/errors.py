"""One exception for every error answer: an HTTP status, a type and a message.

Raised anywhere (engine, tracking, services, doors) and rendered in one place,
:func:`collective.upgradeapi.services.errors.render`: a refusal (4xx) is
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
    :param details: extra keys of the body.

    :attr:`headers` are set on the response with the status.
    """

    status = 500
    error_type = "BadRequest"

    def __init__(self, message, error_type=None, status=None, **details):
        super().__init__(message)
        self.message = message
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


class Locked(UpgradeError):
    """Another run holds the site's upgrade lock: 409."""

    status = 409
    error_type = "UpgradeLocked"


class UpgradeFailed(UpgradeError):
    """A step failed; the answer carries the run: 500."""

    status = 500
    error_type = "UpgradeFailed"
