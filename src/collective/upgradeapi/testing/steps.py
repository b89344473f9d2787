"""Real upgrade step handlers for the test-only profiles.

Each step leaves a trace in the database (a marker on the site), so tests can
check what was applied and what was rolled back.
"""

from persistent.list import PersistentList
from zope.annotation.interfaces import IAnnotations
from zope.component.hooks import getSite

import logging
import transaction


logger = logging.getLogger("collective.upgradeapi.testing")

MARKERS = "collective.upgradeapi.testing.markers"


def markers(site):
    """The names of the steps that ran and were kept, in order."""
    return list(IAnnotations(site).get(MARKERS, ()))


def _mark(tool, name):
    site = getSite()
    annotations = IAnnotations(site)
    if MARKERS not in annotations:
        annotations[MARKERS] = PersistentList()
    annotations[MARKERS].append(name)
    logger.info("Test step %s ran.", name)


def marker(name):
    """A step handler that records ``name``."""

    def handler(tool):
        _mark(tool, name)

    handler.__name__ = f"mark_{name}"
    return handler


base_1001_a = marker("base-1001-a")
base_1001_b = marker("base-1001-b")
base_1002 = marker("base-1002")
dependent_2001 = marker("dependent-2001")
broken_3001 = marker("broken-3001")
core_ungrouped = marker("core-ungrouped")


def broken_3002(tool):
    """Writes, then fails: the write must not survive."""
    _mark(tool, "broken-3002")
    raise RuntimeError("This test step fails on purpose.")


def committing_4001(tool):
    """Writes and commits, as batched reindexing steps do."""
    _mark(tool, "committing-4001")
    transaction.commit()
    _mark(tool, "committing-4001-after-commit")


def aborting_5001(tool):
    """Writes, then aborts the transaction, dropping earlier steps' work."""
    _mark(tool, "aborting-5001")
    transaction.abort()
