"""Upgrade steps that use the transaction the way real steps do.

One step per pattern (profile ``collective.upgradeapi.testing:patterns``),
each leaving markers before and after its transaction call, so tests can
check what each pattern does in a real run and in a dry run.
"""

from collective.upgradeapi.testing.steps import _mark
from zope.component.hooks import getSite
from zope.lifecycleevent import modified

import transaction


#: Where :func:`own_connection_7005` writes, in the database root.
OUTSIDE = "collective.upgradeapi.testing.outside"

#: Set ``FAIL["own_connection"]`` to make the last step fail after its write.
FAIL = {"own_connection": False}


def commit_and_begin_7001(tool):
    """Batching: commit what was done so far, then begin a new transaction."""
    _mark(tool, "pattern-commit-begin")
    transaction.commit()
    transaction.begin()
    _mark(tool, "pattern-commit-begin-after")


def get_commit_7002(tool):
    """Commit through the transaction object itself."""
    _mark(tool, "pattern-get-commit")
    transaction.get().commit()
    _mark(tool, "pattern-get-commit-after")


def savepoint_7003(tool):
    """Take a savepoint, write, roll back to it: only the first write stays."""
    _mark(tool, "pattern-savepoint")
    savepoint = transaction.savepoint()
    _mark(tool, "pattern-savepoint-rolled-back")
    savepoint.rollback()


def doomed_check_7004(tool):
    """Skip the work in a doomed (dry-run) transaction, as careful steps do."""
    if transaction.get().isDoomed():
        _mark(tool, "pattern-saw-doomed")
    else:
        _mark(tool, "pattern-not-doomed")


def own_connection_7005(tool):
    """Open a connection with a transaction manager of its own and commit there.

    What it commits is out of the run's reach: durable, in a dry run too.
    """
    with getSite()._p_jar.db().transaction() as connection:
        root = connection.root()
        root[OUTSIDE] = root.get(OUTSIDE, 0) + 1
    _mark(tool, "pattern-own-connection")
    if FAIL["own_connection"]:
        raise RuntimeError("This test step fails after writing on its own.")


def edit_front_page_8001(tool):
    """Edit the document ``front-page`` as content editing does.

    With plone.app.caching purging Documents, the modification queues a purge
    of its URLs, sent after a successful request.
    """
    document = getSite()["front-page"]
    document.title = "Edited by an upgrade step"
    modified(document)
    _mark(tool, "purging-8001")
