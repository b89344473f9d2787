"""Exit codes and :class:`Failure`, the end of a command that cannot go on."""

#: Exit codes shared by every command.
OK = 0
FAILED = 1
ERROR = 2


class Failure(Exception):
    """A command cannot go on: a one-line ``message`` and an exit code.

    :param message: what went wrong and what to do, on one line.
    :param exit_code: the process exit code, :data:`ERROR` unless told.
    :param document: the JSON document to print with ``--json``; by default
        ``{"type", "message"}``.
    :param retry: whether waiting may help (the site is still starting).
    :param error_type: the ``type`` of the default document.
    """

    def __init__(
        self, message, exit_code=ERROR, document=None, retry=False, error_type="Error"
    ):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.retry = retry
        self.document = document or {"type": error_type, "message": message}
