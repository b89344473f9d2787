"""What a run produced: per step, per profile, and for the whole run."""

from collective.upgradeapi.engine.profiles import PendingStep
from dataclasses import dataclass
from dataclasses import field
from Products.GenericSetup.upgrade import normalize_version
from transaction.interfaces import DoomedTransaction

import traceback


DONE = "done"
FAILED = "failed"
NOT_RUN = "not_run"
#: recorded as done without running (``mark_done``).
MARKED = "marked_done"


class RunCancelled(Exception):
    """Raised by a listener at a step boundary to stop the run.

    :param user: who asked for the cancellation.
    """

    def __init__(self, user):
        super().__init__(f"The run was cancelled by {user}.")
        self.user = user


@dataclass
class StepResult:
    #: the step, or a task of Plone's core upgrade (:class:`.profiles.PendingStep`)
    task: PendingStep
    status: str = NOT_RUN
    duration: float = 0.0
    log: list = field(default_factory=list)
    error: dict | None = None
    #: whether what the step did is durable: its unit was committed.
    committed: bool = False
    #: what the step changed (:mod:`.changes`), when the run records it.
    changes: dict | None = None

    def as_dict(self):
        data = {
            **self.task.ref(),
            "source": self.task.source,
            "dest": self.task.dest,
            "status": self.status,
            "committed": self.committed,
            "duration": round(self.duration, 6),
            "log": self.log,
        }
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass
class ProfileResult:
    id: str
    before: str
    after: str | None = None
    fs: str | None = None

    def as_dict(self):
        return {
            "id": self.id,
            "versions": {"before": self.before, "after": self.after, "fs": self.fs},
        }


@dataclass
class RunResult:
    """The outcome of one run.

    ``run_id`` is set by the tracked lifecycle (:mod:`collective.upgradeapi.api`):
    the history entry. ``transaction_id`` is the last committed transaction
    (as the Undo tab lists it); ``commits`` lists every one of them.
    """

    dry_run: bool
    steps: list = field(default_factory=list)
    profiles: list = field(default_factory=list)
    report: str = ""
    committed: bool = False
    duration: float = 0.0
    run_id: int | None = None
    transaction_id: str | None = None
    #: what one transaction held: ``"run"``, ``"profile"`` or ``"step"``.
    commit: str = "run"
    #: the committed transactions: ``{"unit", "steps", "transaction"}``.
    commits: list = field(default_factory=list)
    #: what the whole run changed (:mod:`.changes`), when it records it.
    changes: dict | None = None

    @property
    def failed_step(self):
        for result in self.steps:
            if result.status == FAILED:
                return result
        return None

    @property
    def ok(self):
        return self.failed_step is None

    @property
    def upgraded(self):
        """Every profile of the run records its code's version (or a newer one)."""
        return all(
            normalize_version(p.after) >= normalize_version(p.fs)
            for p in self.profiles
            if p.fs is not None
        )


def describe_error(exc, task, dry_run):
    """The error entry of a failed step."""
    message = str(exc) or exc.__class__.__name__
    if isinstance(exc, DoomedTransaction) and dry_run:
        message = (
            f"Step {task.title!r} committed the dry run's transaction in a way "
            "that cannot become a savepoint, so it cannot be dry-run. Run it "
            "for real (all or nothing) or test it on a copy."
        )
    return {
        "type": exc.__class__.__name__,
        "message": message,
        "traceback": "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)
        ),
    }
