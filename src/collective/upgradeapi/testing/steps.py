"""Real upgrade step handlers for the test-only profiles.

Each step leaves a trace in the database (a marker on the site), so tests can
check what was applied and what was rolled back. A step that does nothing
else is named for its marker, ``_`` for ``-``: the handler
``steps.mark_base_1001_a`` records ``base-1001-a`` (:func:`__getattr__`).
"""

from persistent.list import PersistentList
from zope.annotation.interfaces import IAnnotations
from zope.component.hooks import getSite

import logging
import transaction


logger = logging.getLogger("collective.upgradeapi.testing")

MARKERS = "collective.upgradeapi.testing.markers"

#: Lines :func:`loud_10001` logs, and characters per line (with the logger's
#: prefix).
LOUD_LINES = 50_000
LOUD_LINE = 1000


def markers(site):
    """The names of the steps that ran and were kept, in order."""
    return list(IAnnotations(site).get(MARKERS, ()))


def _mark(tool, name):
    IAnnotations(getSite()).setdefault(MARKERS, PersistentList()).append(name)
    logger.info("Test step %s ran.", name)


def marker(name):
    """A step handler that records ``name``."""

    def handler(tool):
        _mark(tool, name)

    return handler


def __getattr__(name):
    """``mark_<marker>``: a step handler that records ``<marker>``."""
    if not name.startswith("mark_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return marker(name.removeprefix("mark_").replace("_", "-"))


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


def loud_10001(tool):
    """Logs 50 MB of INFO lines, for the memory test (``loud.zcml``, loaded
    only by the tests that start a real Zope process)."""
    filler = "x" * (LOUD_LINE - 60)
    loud = logger.getChild("loud")
    for number in range(LOUD_LINES):
        loud.info("Loud step line %06d %s", number, filler)
