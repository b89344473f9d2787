"""What a command needs of a site: :class:`Door`, and :class:`Failure`.

Both doors implement :class:`Door`: :class:`plone_upgrade.http.Client` over
HTTP, and ``collective.upgradeapi.cli.site.SiteDoor`` in-process. Every
method answers the document the ``@upgrade`` service would, or raises
:class:`Failure`.
"""

from collections.abc import Callable
from typing import Protocol


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


class Door(Protocol):
    """One site, over HTTP or in this process."""

    #: How messages name the site: its URL, or its path in the database.
    name: str

    def upgrade_info(self, profile: str | None = None) -> dict:
        """What ``GET @upgrade[?profile=ID]`` answers."""

    def prepare_run(self) -> None:
        """Make sure that a run reaches collective.upgradeapi's engine."""

    def upgrade(
        self, body: dict, on_progress: Callable | None = None, interval: float = 1.0
    ) -> tuple[int, dict]:
        """Run what ``POST @upgrade`` with ``body`` runs.

        :param on_progress: called with a status document as steps start.
        :param interval: seconds between two looks at the status (over HTTP).
        :returns: ``(200, answer)``, or ``(500, error body)`` when a step failed.
        """

    def stamp(self, profile_ids: list[str]) -> dict:
        """What ``POST @upgrade`` with ``{"stamp": profile_ids}`` answers."""

    def history(self, run_id: int | None = None, limit: int | None = None) -> dict:
        """What ``GET @upgrade/history[/<run_id>]?b_size=LIMIT`` answers."""

    def lock(self) -> dict | None:
        """The lock as ``GET @upgrade/lock`` shows it (newest state), or ``None``."""

    def unlock(self, force: bool) -> dict | None:
        """What ``DELETE @upgrade/lock`` answers, or ``None`` without a lock."""

    def cancel(self) -> dict | None:
        """What ``DELETE @upgrade/run`` answers, or ``None`` without a run."""

    def close(self) -> None:
        """Let go of the site."""
