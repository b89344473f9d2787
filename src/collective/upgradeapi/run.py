"""Run upgrade steps: all or nothing, truly dry when asked, step by step.

This module knows nothing of HTTP. :class:`Runner` takes a
:class:`Selection`, runs the chosen steps inside the current transaction and
returns a :class:`RunResult`:

- **Dry run**: the transaction is doomed before the first step, so nothing can
  be written, not even by a step that commits (it fails, saying it cannot be
  dry-run). Everything is aborted afterwards.
- **Real run**: a step that raises aborts the whole transaction; no step of
  the run stays applied. A step that calls ``transaction.commit()`` gets a
  savepoint instead (memory is freed just as well), so the run stays atomic;
  the run commits once, at its end.
"""

from collective.upgradeapi import compat
from collective.upgradeapi import done
from collective.upgradeapi import logcapture
from collective.upgradeapi.plan import Planner
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from Products.GenericSetup.upgrade import normalize_version
from transaction.interfaces import DoomedTransaction
from ZODB.POSException import ConflictError

import logging
import time
import traceback
import transaction


logger = logging.getLogger("collective.upgradeapi")

DONE = "done"
FAILED = "failed"
NOT_RUN = "not_run"


class SelectionError(ValueError):
    """The selection names something that cannot be run; nothing ran.

    :param message: what is wrong and what to do.
    :param details: extra keys for the error body (offending ids).
    """

    def __init__(self, message, error_type="BadRequest", **details):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.details = details


@dataclass(frozen=True)
class Selection:
    """What to run: Plone's core upgrade, whole profiles, or single steps.

    :param profiles: ``None`` for the core upgrade, ``"all"``, or profile ids.
    :param steps: step ids, or ``None``.
    """

    profiles: object = None
    steps: tuple | None = None


@dataclass
class Task:
    """One unit of work: an upgrade step, or a core follow-up (recatalog)."""

    id: str
    profile: str
    title: str
    source: str | None
    dest: str | None
    call: object = field(repr=False)


@dataclass
class StepResult:
    task: Task
    status: str = NOT_RUN
    duration: float = 0.0
    log: list = field(default_factory=list)
    error: dict | None = None

    def as_dict(self):
        data = {
            "id": self.task.id,
            "profile": self.task.profile,
            "title": self.task.title,
            "source": self.task.source,
            "dest": self.task.dest,
            "status": self.status,
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
    dry_run: bool
    steps: list = field(default_factory=list)
    profiles: list = field(default_factory=list)
    report: str = ""
    committed: bool = False
    duration: float = 0.0

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


class StepFailed(Exception):
    """Raised inside the run to stop at the first failing task."""


class StepAborted(Exception):
    """A step tried to abort the transaction of an all-or-nothing run."""


@contextmanager
def _guard_transaction(txn, dry_run, result_holder):
    """Keep steps inside the run's one transaction.

    - ``commit()`` in a real run becomes a savepoint (memory is freed just as
      well); in a dry run the doomed transaction refuses it.
    - ``abort()`` fails the step: it would silently drop the work of the
      steps before it (and end a dry run's doomed transaction).
    """

    def commit():
        result = result_holder[0]
        if result is not None:
            logger.info(
                "Step %r asked for a commit; a savepoint was taken instead "
                "so that the run stays all or nothing.",
                result.task.title,
            )
        txn.savepoint(optimistic=True)

    def abort():
        raise StepAborted(
            "The step aborted the transaction, which would drop the work of "
            "the steps before it; the whole run is aborted instead."
        )

    if not dry_run:
        txn.commit = commit
    txn.abort = abort
    try:
        yield
    finally:
        txn.__dict__.pop("commit", None)
        txn.__dict__.pop("abort", None)


class Runner:
    """Runs a :class:`Selection` on one site.

    :param site: the Plone site (acquisition-wrapped, with a request).
    :param dry_run: doom the transaction and abort at the end.
    """

    def __init__(self, site, dry_run=False):
        self.site = site
        self.dry_run = dry_run
        self.planner = Planner(site)
        self.setup = self.planner.setup
        self.migration = self.planner.migration
        #: callables ``listener(event, payload)``: ``("plan", [ProfilePlan])``
        #: before the first step, ``("start" | "end", StepResult)`` around each.
        self.listeners = []

    # -- planning --------------------------------------------------------

    def check(self, selection):
        """Validate ``selection`` against the site; raise :class:`SelectionError`.

        :returns: the list of profile plans the run will touch, in run order.
        """
        plans = self.planner.all_profiles()
        by_id = {plan.id: plan for plan in plans}
        if selection.steps is not None:
            return self._check_steps(selection.steps, plans)
        if selection.profiles is None:
            core = set(self.planner.core_group())
            return [plan for plan in plans if plan.id in core]
        if selection.profiles == "all":
            # Every profile with pending steps; Plone's core upgrade always.
            core = set(self.planner.core_group())
            return [plan for plan in plans if plan.id in core or plan.pending]
        else:
            unknown = [
                p for p in selection.profiles if not self.planner.profile_exists(p)
            ]
            if unknown:
                raise SelectionError(
                    f"Unknown profile id(s): {', '.join(unknown)}. "
                    "GET @upgrade lists the installed profiles with pending steps.",
                    unknown_profiles=unknown,
                )
            missing = [p for p in selection.profiles if p not in by_id]
            if missing:
                raise SelectionError(
                    f"Profile(s) not installed on this site: {', '.join(missing)}. "
                    "Install an add-on before upgrading it.",
                    not_installed=missing,
                )
            wanted = set(selection.profiles)
            chosen = [plan for plan in plans if plan.id in wanted]
        downgraded = [plan.id for plan in chosen if plan.downgraded]
        if downgraded:
            raise SelectionError(
                "The database records a newer version than the code provides "
                f"for: {', '.join(downgraded)}. Was the code downgraded? Install "
                "the matching version of the code; these profiles cannot be "
                "upgraded.",
                error_type="Downgraded",
                downgraded=downgraded,
            )
        return chosen

    def _check_steps(self, step_ids, plans):
        index = {}
        for plan in plans:
            for step in plan.steps:
                index.setdefault(step.id, []).append(step)
        unknown = [sid for sid in step_ids if sid not in index]
        if unknown:
            raise SelectionError(
                f"Unknown or not pending step id(s): {', '.join(unknown)}. "
                "GET @upgrade lists the pending steps with their ids.",
                unknown_steps=unknown,
            )
        already = [sid for sid in step_ids if any(s.done for s in index[sid])]
        if already:
            raise SelectionError(
                f"Step(s) already run: {', '.join(already)}.",
                already_done=already,
            )
        wanted = set(step_ids)
        chosen = []
        for plan in plans:
            steps = [s for s in plan.steps if s.id in wanted]
            if steps:
                if plan.downgraded:
                    raise SelectionError(
                        f"Profile {plan.id} is downgraded; its steps cannot run.",
                        error_type="Downgraded",
                        downgraded=[plan.id],
                    )
                chosen.append(plan)
        return chosen

    # -- running ---------------------------------------------------------

    def run(self, selection):
        """Run ``selection``; return a :class:`RunResult`.

        Raises :class:`SelectionError` before anything runs when the selection
        is not valid. Never leaves partial work behind: on failure, and for a
        dry run, the transaction is aborted; on success it is committed.
        """
        started = time.monotonic()
        plans = self.check(selection)
        result = RunResult(dry_run=self.dry_run)
        result.profiles = [
            ProfileResult(id=plan.id, before=plan.instance, fs=plan.fs)
            for plan in plans
        ]
        for listener in self.listeners:
            listener("plan", plans)
        txn = transaction.get()
        if self.dry_run:
            txn.doom()
        holder = [None]
        with logcapture.capture() as collector:
            self._collector = collector
            try:
                with _guard_transaction(txn, self.dry_run, holder):
                    self._execute(selection, plans, result, holder)
            except StepFailed:
                self._list_not_run(selection, plans, result)
            finally:
                self._collector = None
            result.report = collector.text()
        if self.dry_run or not result.ok:
            transaction.abort()
        else:
            transaction.commit()
            result.committed = True
        transaction.begin()
        for profile in result.profiles:
            profile.after = self.planner.instance_version(profile.id)
        result.duration = time.monotonic() - started
        return result

    def _execute(self, selection, plans, result, holder):
        if self.dry_run:
            logger.info("Dry run: nothing will be committed.")
        core_ids = set(self.planner.core_group())
        core_plans = [plan for plan in plans if plan.id in core_ids]
        other_plans = [plan for plan in plans if plan.id not in core_ids]
        only = set(selection.steps) if selection.steps is not None else None
        runs_core_path = only is None and (
            selection.profiles is None
            or selection.profiles == "all"
            or self.planner.core_profile_id in selection.profiles
        )
        if runs_core_path:
            self._run_core(core_plans, result, holder)
        else:
            for plan in core_plans:
                self._run_profile(plan, result, holder, only)
        for plan in other_plans:
            self._run_profile(plan, result, holder, only)

    def _list_not_run(self, selection, plans, result):
        """After a failure, list the planned steps that never got their turn."""
        listed = {(r.task.profile, r.task.id) for r in result.steps}
        only = set(selection.steps) if selection.steps is not None else None
        for plan in plans:
            for step in plan.steps:
                if step.done or (plan.id, step.id) in listed:
                    continue
                if only is None or step.id in only:
                    task = Task(
                        step.id, plan.id, step.title, step.source, step.dest, None
                    )
                    self._queue(task, result)

    def _run_core(self, plans, result, holder):
        """Plone's own upgrade sequence, step by step (``portal_migration``)."""
        core_id = self.planner.core_profile_id
        pre, post = self.planner.core_addon_ids()
        by_id = {plan.id: plan for plan in plans}
        version = self.planner.instance_version(core_id)
        logger.info("Starting the upgrade of Plone from version %s.", version)
        for profile_id in pre:
            if profile_id in by_id:
                self._run_profile(by_id[profile_id], result, holder)
        if core_id in by_id:
            self._run_profile(by_id[core_id], result, holder)
        if self.migration.needUpgrading():
            logger.error(
                "The upgrade path did not reach version %s; core add-ons were "
                "not upgraded.",
                self.migration.getFileSystemVersion(),
            )
            return
        for profile_id in post:
            if profile_id in by_id and profile_id not in pre:
                self._run_profile(by_id[profile_id], result, holder)
        follow_ups = [
            (
                "recatalog",
                "Rebuild the catalog",
                self.migration.needRecatalog,
                lambda: compat.recatalog(self.migration),
            ),
            (
                "update-role-mappings",
                "Update workflow role mappings",
                self.migration.needUpdateRole,
                lambda: compat.update_role_mappings(self.migration),
            ),
        ]
        for task_id, title, needed, call in follow_ups:
            if needed():
                task = Task(task_id, core_id, title, None, None, call)
                self._run_task(task, result, holder)
        logger.info("Plone's core upgrade has finished.")

    def _run_profile(self, plan, result, holder, only=None):
        """Run the pending steps of one profile (or those in ``only``)."""
        steps = [s for s in plan.steps if not s.done]
        if only is not None:
            steps = [s for s in steps if s.id in only]
        if not steps:
            return
        logger.info("Upgrading profile %s from version %s.", plan.id, plan.instance)
        tasks = [
            Task(
                step.id,
                plan.id,
                step.title,
                step.source,
                step.dest,
                lambda entity=step.entity: entity.doStep(self.setup),
            )
            for step in steps
        ]
        # All tasks are queued first, so that a failure lists the rest as not run.
        for step_result in [self._queue(task, result) for task in tasks]:
            self._run_queued(step_result, holder)
        self._advance_version(plan, {task.id for task in tasks})

    def _advance_version(self, plan, ran):
        """Move the recorded version past every step that is done, no further.

        Steps done beyond the new version are remembered (:mod:`.done`) so
        that a later run of the profile does not run them again.
        """
        done_ids = {s.id for s in plan.steps if s.done} | ran
        steps = plan.steps
        version = None
        covered = 0
        for index, step in enumerate(steps):
            if step.id not in done_ids:
                break
            following = steps[index + 1] if index + 1 < len(steps) else None
            if step.dest is not None and (
                following is None or following.dest != step.dest
            ):
                version = step.dest
                covered = index + 1
        if version is not None and version != plan.instance:
            self.setup.setLastVersionForProfile(plan.id, version)
            logger.info("Profile %s is now at version %s.", plan.id, version)
        remaining = {s.id for s in steps[covered:] if s.id in done_ids}
        done.set_done_step_ids(self.site, plan.id, remaining)

    # -- tasks -----------------------------------------------------------

    def _queue(self, task, result):
        step_result = StepResult(task=task)
        result.steps.append(step_result)
        return step_result

    def _run_task(self, task, result, holder):
        self._run_queued(self._queue(task, result), holder)

    def _run_queued(self, step_result, holder):
        task = step_result.task
        marker = id(step_result)
        self._collector.marker = marker
        holder[0] = step_result
        for listener in self.listeners:
            listener("start", step_result)
        started = time.monotonic()
        try:
            task.call()
        except ConflictError:
            raise
        except Exception as exc:
            step_result.duration = time.monotonic() - started
            step_result.status = FAILED
            step_result.error = _describe(exc, task, self.dry_run)
            logger.error("Upgrade step %r failed:", task.title, exc_info=True)
            step_result.log = self._collector.lines(marker, every=False)
            self._collector.marker = None
            holder[0] = None
            for listener in self.listeners:
                listener("end", step_result)
            raise StepFailed() from exc
        step_result.duration = time.monotonic() - started
        step_result.status = DONE
        logger.info("Ran upgrade step %r (profile %s).", task.title, task.profile)
        step_result.log = self._collector.lines(marker, every=False)
        self._collector.marker = None
        holder[0] = None
        for listener in self.listeners:
            listener("end", step_result)


def _describe(exc, task, dry_run):
    """The error entry of a failed step."""
    message = str(exc) or exc.__class__.__name__
    if isinstance(exc, DoomedTransaction) and dry_run:
        message = (
            f"Step {task.title!r} commits the transaction itself, so it cannot "
            "be dry-run: a dry run never commits. Run it for real (all or "
            "nothing: its commits become savepoints) or test it on a copy."
        )
    return {
        "type": exc.__class__.__name__,
        "message": message,
        "traceback": "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)
        ),
    }
