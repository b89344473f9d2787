"""Upgrade steps for lock tests: steps that wait for a gate, a flaky step.

A gate is a file. When ``COLLECTIVE_UPGRADEAPI_TEST_GATES`` names a
directory, the step ``slow_<n>`` waits until the file ``<directory>/<n>``
exists (at most :data:`TIMEOUT` seconds, then it fails: a safety net so that a
test that never opens its gate fails instead of hanging; no test waits for it,
so it is long enough for a busy machine). Files work across threads and
processes alike. Without the variable the steps do not wait.
"""

from collective.upgradeapi.testing.steps import _mark
from collective.upgradeapi.testing.steps import logger
from pathlib import Path
from ZODB.POSException import ConflictError

import os
import time
import transaction


VARIABLE = "COLLECTIVE_UPGRADEAPI_TEST_GATES"
TIMEOUT = 600.0


def wait_for_gate(name):
    directory = os.environ.get(VARIABLE)
    if not directory:
        return
    gate = Path(directory) / name
    deadline = time.monotonic() + TIMEOUT
    logger.info("Waiting for gate %s.", name)
    while not gate.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"The test gate {gate} was never opened.")
        time.sleep(0.05)


def open_gate(directory, name):
    """Let the step waiting for ``name`` go on."""
    (Path(directory) / name).touch()


def slow_step(name):
    def handler(tool):
        wait_for_gate(name)
        _mark(tool, f"slow-{name}")

    return handler


slow_1 = slow_step("1")
slow_2 = slow_step("2")
slow_3 = slow_step("3")


#: How many more times :func:`flaky_6001` raises a write conflict.
CONFLICTS = {"left": 0}


def flaky_6001(tool):
    """Writes, then raises a write conflict while ``CONFLICTS["left"]`` > 0.

    Zope's publisher retries a request on a conflict; the test checks that
    the retry neither waits for its own lock nor leaves two runs behind.
    """
    _mark(tool, "flaky-6001")
    if CONFLICTS["left"] > 0:
        CONFLICTS["left"] -= 1
        raise ConflictError("A write conflict raised by a test step.")


def slow_commit_9001(tool):
    """Writes, and makes the run's commit wait for the gate ``commit`` (in a
    before-commit hook), so tests can watch a run while it commits."""
    _mark(tool, "slow-commit-9001")
    transaction.get().addBeforeCommitHook(wait_for_gate, ("commit",))
