"""Upgrade steps that change what editors change: the live-site test.

Each step ``touch_<n>`` sets the attribute ``live_step_<n>`` on every item
of the site's folder :data:`FOLDER`, then waits at the gate
``live-<n>-<call>`` (:mod:`.slow`), where ``<call>`` counts the step's calls
since :func:`reset`: a unit run again after a write conflict calls its steps
again, and a test can stop the run inside the second call, while it holds
writes.
"""

from collective.upgradeapi.testing.slow import wait_for_gate
from zope.component.hooks import getSite


FOLDER = "live"
#: How many times each step ran since :func:`reset`.
CALLS = {}
reset = CALLS.clear


def touch(number):
    def handler(tool):
        folder = getSite().get(FOLDER)
        for item in folder.objectValues() if folder is not None else ():
            setattr(item, f"live_step_{number}", True)
        CALLS[number] = CALLS.get(number, 0) + 1
        wait_for_gate(f"live-{number}-{CALLS[number]}")

    return handler


touch_1 = touch(1)
touch_2 = touch(2)
touch_3 = touch(3)
