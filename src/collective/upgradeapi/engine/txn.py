"""The one transaction of a run, and what steps may do with it.

A run executes every step inside one transaction (:class:`RunTransaction`),
created by a transaction manager of its own (:class:`RunTransactionManager`)
that stands in for the thread's manager while the run lasts. Two references
are pointed at it, for the running thread only, and restored afterwards:

- the ``manager`` attribute of ``transaction.manager`` (the thread-local
  manager documents it for advanced uses), which ``transaction.get()``,
  ``transaction.commit()`` and friends use;
- the ``transaction_manager`` attribute of the site's ZODB connection, which
  the connection joins on its first write (ZODB unwraps the thread-local
  manager when it opens a connection).

Nothing else of the ``transaction`` package or of ZODB is replaced.

What the usual transaction calls of upgrade steps do while a step runs:

==========================================  ================================
call in a step                              effect
==========================================  ================================
``transaction.commit()``                    a savepoint; the run goes on in
                                            the same transaction (dry runs
                                            too: nothing becomes durable)
``transaction.get().commit()``              the same
``transaction.commit(); transaction.begin()``  the same; ``begin()`` goes on
                                            with the run's transaction
``transaction.savepoint()``                 a savepoint, as usual
``transaction.abort()``                     the step fails, the run is
                                            aborted (it would drop the work
                                            of the steps before it)
``transaction.isDoomed()``                  ``True`` in a dry run
``transaction.doom()``                      the run ends up not committed
==========================================  ================================

A step that opens its own connection with its own transaction manager is out
of reach: what it commits there is durable, in a dry run too.

Between steps and at the end of the run, :meth:`RunTransaction.finish`
commits or aborts for real.
"""

from transaction import Transaction
from transaction import TransactionManager
from zope.annotation.interfaces import IAnnotations

import contextlib
import copy
import logging
import transaction


logger = logging.getLogger("collective.upgradeapi")


class StepAborted(Exception):
    """A step aborted the transaction of a run."""


class RunTransaction(Transaction):
    """A transaction whose ``commit`` and ``abort`` are guarded while a step runs."""

    #: the title of the step running now, or ``None`` between steps.
    step = None

    def commit(self):
        if self.step is None:
            return super().commit()
        logger.info(
            "Step %r committed; a savepoint was taken instead, the run goes on "
            "in its one transaction.",
            self.step,
        )
        self.savepoint(optimistic=True)
        return None

    def abort(self):
        if self.step is None:
            return super().abort()
        raise StepAborted(
            "The step aborted the transaction, which would drop the work of the "
            "steps before it; the whole run is aborted instead."
        )

    def finish(self, commit):
        """Commit (``True``) or abort (``False``) for real."""
        self.step = None
        if commit:
            super().commit()
        else:
            super().abort()


class RunTransactionManager(TransactionManager):
    """Creates :class:`RunTransaction` objects; ``begin`` inside a step goes on."""

    def begin(self):
        current = self._txn
        if current is not None and getattr(current, "step", None) is not None:
            logger.info(
                "Step %r began a new transaction; the run goes on in its own.",
                current.step,
            )
            return current
        if current is not None:
            current.abort()
        txn = self._txn = RunTransaction(self._synchs, self)
        self._synchs.map(lambda synch: synch.newTransaction(txn))
        return txn

    def get(self):
        if self._txn is None:
            return self.begin()
        return self._txn


@contextlib.contextmanager
def run_transaction(connection, dry_run=False):
    """Run the block in a fresh :class:`RunTransaction` on this thread.

    The thread's current transaction is aborted first (the run starts from the
    newest committed state). Afterwards the thread has its own manager back,
    with a new transaction begun.

    :param connection: the ZODB connection the site was loaded from; it is
        kept in sync by the run's manager.
    :param dry_run: doom the transaction before the first step.
    :returns: a context manager yielding the :class:`RunTransaction`.
    """
    thread = transaction.manager
    thread.abort()
    own = thread.manager
    own_of_connection = connection.transaction_manager
    manager = RunTransactionManager(explicit=False)
    manager.registerSynch(connection)
    thread.manager = manager
    connection.transaction_manager = manager
    try:
        txn = manager.begin()
        if dry_run:
            txn.doom()
        try:
            yield txn
        finally:
            if manager._txn is not None:
                manager._txn.finish(commit=False)
    finally:
        connection.transaction_manager = own_of_connection
        thread.manager = own
        manager.unregisterSynch(connection)
        own.begin()


@contextlib.contextmanager
def in_step(txn, title):
    """Mark ``title`` as the running step of ``txn`` while the block runs."""
    txn.step = title
    try:
        yield
    finally:
        txn.step = None


def run_for_request(request, call):
    """Call ``call()``, a run, and return its :class:`.results.RunResult`;
    what it queued on ``request`` for after a successful request is dropped
    unless the run committed.

    After-success hooks (plone.cachepurging's purges, for example) queue their
    work on the request's annotations while steps run. A dry run or a failed
    run must not let that work out, so the annotations are put back as they
    were before the run.
    """
    annotations = IAnnotations(request, None) if request is not None else None
    # Copies: hooks add to the sets and lists they find (in place).
    before = {key: copy.copy(value) for key, value in (annotations or {}).items()}
    result = None
    try:
        result = call()
    finally:
        if annotations is not None and not (result is not None and result.committed):
            for key in [key for key in annotations if key not in before]:
                del annotations[key]
            annotations.update(before)
    return result
