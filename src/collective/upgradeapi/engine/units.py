"""Commit points of a run: the whole run, each profile, or each step.

With ``commit="run"`` (the default) a run is one transaction, committed at its
end by the runner. With ``"profile"`` or ``"step"``, each unit (a profile's
pending steps, or one step; Plone's core follow-ups are units of their own)
commits on its own as soon as it is done, with the profile's recorded version
moved past what the unit did, so a later run continues where this one
stopped. A failing unit is aborted; the units before it stay committed. A
dry run is one doomed transaction whatever the mode.

A write conflict in a unit (the whole run with ``commit="run"``) aborts it
and runs it again from the newest state, up to :data:`ATTEMPTS` times in
all: ``notify("retry", (label, step_results))`` comes first, so that the
run's lock holds writers off while the unit runs again (see
:mod:`collective.upgradeapi.doors.hold`).
"""

from collective.upgradeapi.engine.results import NOT_RUN
from ZODB.POSException import ConflictError
from ZODB.utils import tid_repr

import logging
import transaction


logger = logging.getLogger("collective.upgradeapi")

ATTEMPTS = 3


class Units:
    """Runs units of work for a :class:`.runner.Runner`, committing as asked.

    :param txn: the run's first transaction (:mod:`.txn`); :attr:`txn` is
        the current one, begun on the thread's manager (the run's own while
        it runs, see :func:`.txn.run_transaction`).
    :param mode: the commit mode (``"run"``, ``"profile"``, ``"step"``).
    :param result: the run's :class:`.results.RunResult`.
    :param before_commit: ``before_commit(txn, result)`` called before each
        commit; it may return a persistent object written in that transaction,
        whose serial then names the committed transaction.
    :param notify: ``notify("commit", label)`` before each commit,
        ``notify("committed", step_results)`` after it.
    """

    def __init__(self, txn, mode, dry_run, result, before_commit, notify):
        self.txn = txn
        self.mode = mode
        self.result = result
        self.before_commit = before_commit
        self.notify = notify
        #: whether units commit on their own (not for a dry run).
        self.active = mode != "run" and not dry_run

    def run(self, label, step_results, work):
        """Do ``work()`` as the unit ``label`` (its ``step_results``)."""
        if not self.active:
            work()
            return

        def attempt():
            work()
            self.commit(label, step_results)

        self._attempts(label, step_results, attempt, _reset)

    def run_whole(self, work):
        """Do ``work()``, the whole run of ``commit="run"``, and commit it
        unless a step failed or doomed it; run it again after a conflict."""
        result = self.result

        def attempt():
            work()
            if result.ok and not self.txn.isDoomed():
                self.commit("run", [s for s in result.steps if s.status != NOT_RUN])

        self._attempts("run", result.steps, attempt, list.clear)

    def _attempts(self, label, step_results, attempt, reset):
        for number in range(1, ATTEMPTS + 1):
            try:
                attempt()
                return
            except ConflictError:
                self.txn.finish(False)
                if number == ATTEMPTS:
                    self.txn = transaction.manager.begin()
                    raise
                logger.warning(
                    "Write conflict in unit %s (attempt %d of %d); running it "
                    "again from the newest state.",
                    label,
                    number,
                    ATTEMPTS,
                )
                self.notify("retry", (label, step_results))
                reset(step_results)
                # Begun after the hold: the unit sees every write before it.
                self.txn = transaction.manager.begin()

    def commit(self, label, step_results):
        """Commit the current transaction as the unit ``label``; begin the next."""
        txn = self.txn
        self.notify("commit", label)
        marker = None
        if self.before_commit is not None:
            marker = self.before_commit(txn, self.result)
        txn.note(f"unit: {label}")
        txn.finish(True)
        for step_result in step_results:
            step_result.committed = True
        self.notify("committed", step_results)
        self.result.commits.append(
            {
                "unit": label,
                "steps": [step_result.task.id for step_result in step_results],
                "transaction": tid_repr(marker._p_serial) if marker else None,
            }
        )
        self.txn = transaction.manager.begin()


def _reset(step_results):
    for step_result in step_results:
        step_result.status = NOT_RUN
        step_result.log = []
        step_result.error = None
