"""Run upgrade steps: all or nothing, truly dry when asked, step by step.

This module knows nothing of HTTP, locks or history. :class:`Runner` takes a
:class:`.selection.Selection`, runs the chosen steps in one transaction
(:mod:`.txn`) and returns a :class:`.results.RunResult`:

- **Dry run**: the transaction is doomed before the first step; a step's
  commit becomes a savepoint, so the steps after it still run and tell the
  truth. Everything is aborted afterwards.
- **Real run**: a step that raises aborts the whole transaction; no step of
  the run stays applied. A step's commit becomes a savepoint, so the run stays
  atomic; the run commits once, at its end, with a note and the user for the
  Undo tab. A write conflict runs it again (see :mod:`.units`).

Most callers want :func:`collective.upgradeapi.api.upgrade`, which adds the
lock, the live status and the history around a run.
"""

from collective.upgradeapi.engine import changes
from collective.upgradeapi.engine import changeset
from collective.upgradeapi.engine import core
from collective.upgradeapi.engine import logcapture
from collective.upgradeapi.engine import txn as txn_module
from collective.upgradeapi.engine.done import advance_version
from collective.upgradeapi.engine.plan import Planner
from collective.upgradeapi.engine.results import describe_error
from collective.upgradeapi.engine.results import DONE
from collective.upgradeapi.engine.results import FAILED
from collective.upgradeapi.engine.results import MARKED
from collective.upgradeapi.engine.results import NOT_RUN
from collective.upgradeapi.engine.results import ProfileResult
from collective.upgradeapi.engine.results import RunResult
from collective.upgradeapi.engine.results import StepResult
from collective.upgradeapi.engine.selection import check
from collective.upgradeapi.engine.units import Units
from functools import partial
from ZODB.POSException import ConflictError

import logging
import time


logger = logging.getLogger("collective.upgradeapi")


#: Commit modes: what one transaction holds.
RUN = "run"
PROFILE = "profile"
STEP = "step"
COMMIT_MODES = (RUN, PROFILE, STEP)


class StepFailed(Exception):
    """Raised inside the run to stop at the first failing task."""


class Runner:
    """Runs a :class:`.selection.Selection` on one site.

    Its public surface: :attr:`planner`, :attr:`listeners`, :meth:`check`,
    :meth:`run`; and, while :meth:`run` goes on, :meth:`run_profile` and
    :meth:`run_task`, which :mod:`.core` calls in Plone's order.

    :param site: the Plone site (acquisition-wrapped, with a request).
    :param dry_run: doom the transaction and abort at the end.
    :param commit: one of :data:`COMMIT_MODES`.
    :param mark_done: record the selected steps as done, without running them.
    :param changes: record what each step changes (:mod:`.changes`); by
        default for a dry run only.
    """

    def __init__(self, site, dry_run=False, commit=RUN, mark_done=False, changes=None):
        if commit not in COMMIT_MODES:
            raise ValueError(f"commit must be one of {COMMIT_MODES}, got {commit!r}")
        self._site = site
        self._dry_run = dry_run
        self._commit = commit
        self._mark_done = mark_done
        self._changes = dry_run if changes is None else changes
        self.planner = Planner(site)
        #: callables ``listener(event, payload)``: ``("plan", [ProfilePlan])``
        #: before the first step, ``("start" | "end", StepResult)`` around each.
        self.listeners = []
        # What the run going on uses (see :meth:`run`).
        self._result = self._units = self._collector = None

    def check(self, selection):
        """Validate ``selection``; see :func:`.selection.check` and
        :meth:`.plan.Planner.checked`."""
        return self.planner.checked(check, selection)

    def _notify(self, event, payload):
        for listener in self.listeners:
            listener(event, payload)

    def run(self, selection, before_commit=None):
        """Run ``selection``; return a :class:`.results.RunResult`.

        :param before_commit: ``before_commit(txn, result)`` is called in the
            run's transaction just before each commit of a real run (to add a
            note, the user, or a record that commits with the run); it may
            return a persistent object written then (see :mod:`.units`).
        :raises .selection.SelectionError: before anything runs.
        """
        started = time.monotonic()
        connection = self._site._p_jar
        with txn_module.run_transaction(connection, self._dry_run) as txn:
            # Checked inside the run's transaction: the newest committed state.
            plans = self.check(selection)
            result = self._result = RunResult(
                dry_run=self._dry_run,
                commit=RUN if self._dry_run else self._commit,
                profiles=[
                    ProfileResult(id=plan.id, before=plan.instance, fs=plan.fs)
                    for plan in plans
                ],
            )
            self._units = Units(
                txn, self._commit, self._dry_run, result, before_commit, self._notify
            )
            self._notify("plan", plans)
            recorder = changes.Recorder(self._site) if self._changes else None
            with logcapture.capture() as collector, changes.recording(recorder):
                self._collector = collector
                try:
                    if self._commit == RUN and not self._dry_run:
                        self._units.run_whole(lambda: self._attempt(selection, plans))
                    else:
                        self._attempt(selection, plans)
                finally:
                    self._collector = None
                result.report = collector.text()
                if recorder is not None:
                    result.changes = recorder.total(result.steps)
                    result.report += changeset.summary(result.changes) + "\n"
            # What is left: a failing, doomed or dry unit.
            self._units.txn.finish(False)
        result.committed = bool(result.commits)
        if result.commits:
            result.transaction_id = result.commits[-1]["transaction"]
        for profile in result.profiles:
            profile.after = self.planner.instance_version(profile.id)
        result.duration = time.monotonic() - started
        return result

    def _attempt(self, selection, plans):
        try:
            self._execute(selection, plans)
        except StepFailed:
            self._list_not_run(selection, plans)

    def _execute(self, selection, plans):
        if self._dry_run:
            logger.info("Dry run: nothing will be committed.")
        only = selection.only
        runs_core_path = (
            only is None
            and not self._mark_done
            and (
                selection.profiles in (None, "all")
                or self.planner.core_profile_id in selection.profiles
            )
        )
        if runs_core_path:
            core.run_core(self, [plan for plan in plans if plan.core])
            plans = [plan for plan in plans if not plan.core]
        # The plans are in run order, the core group's first.
        for plan in plans:
            self.run_profile(plan, only)

    def _list_not_run(self, selection, plans):
        """After a failure, list the planned steps that never got their turn."""
        steps = self._result.steps
        listed = {step_result.task for step_result in steps}
        for plan in plans:
            selected = plan.selected(selection.only)
            steps += [StepResult(task=s) for s in selected if s not in listed]

    def run_task(self, task):
        """Run one :class:`.profiles.PendingStep` as a unit of its own (a core
        follow-up) in the run going on; a failure stops the run."""
        queued = self._queue(task)
        self._units.run(task.id, [queued], lambda: self._run_queued(queued))

    def run_profile(self, plan, only=None):
        """Run the pending steps of one profile (or those in ``only``) in the
        run going on, as ``portal_setup.upgradeProfile`` would; a failure
        stops the run."""
        steps = plan.selected(only)
        if not steps:
            return
        logger.info("Upgrading profile %s from version %s.", plan.id, plan.instance)
        # All tasks are queued first, so that a failure lists the rest as not run.
        queued = [self._queue(step) for step in steps]
        # (label, its steps, the steps done once it ran): each step, or all.
        units = [(plan.id, queued, queued)]
        if self._commit == STEP:
            units = [
                (f"{plan.id} {one.task.title}", [one], queued[: index + 1])
                for index, one in enumerate(queued)
            ]
        for label, step_results, ran in units:
            self._units.run(
                label, step_results, partial(self._run_and_advance, plan, ran)
            )

    def _run_and_advance(self, plan, queued):
        """Run the queued steps not run yet; move the profile's version."""
        for step_result in queued:
            if step_result.status == NOT_RUN:
                self._run_queued(step_result)
        ran = {step_result.task.id for step_result in queued}
        advance_version(self._site, self.planner.setup, plan, ran)

    def _queue(self, task):
        step_result = StepResult(task=task)
        self._result.steps.append(step_result)
        return step_result

    def _run_queued(self, step_result):
        task = step_result.task
        marker = id(step_result)
        self._collector.marker = marker
        self._notify("start", step_result)
        started = time.monotonic()
        try:
            if self._mark_done:
                logger.info("Marked step %r done without running it.", task.title)
            else:
                with (
                    txn_module.in_step(self._units.txn, task.title),
                    changes.step(step_result),
                ):
                    task.run(self.planner.setup)
                logger.info(
                    "Ran upgrade step %r (profile %s).", task.title, task.profile
                )
        except ConflictError:
            raise
        except Exception as exc:
            step_result.status = FAILED
            step_result.error = describe_error(exc, task, self._dry_run)
            logger.error("Upgrade step %r failed:", task.title, exc_info=True)
        else:
            step_result.status = MARKED if self._mark_done else DONE
        step_result.duration = time.monotonic() - started
        step_result.log = self._collector.lines(marker, every=False)
        self._collector.marker = None
        self._notify("end", step_result)
        if step_result.status == FAILED:
            raise StepFailed()
