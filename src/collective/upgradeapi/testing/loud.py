"""A step that logs a lot: 50 MB of INFO lines (for the memory test).

Loaded with ``loud.zcml`` only, by the tests that start a real Zope process.
"""

import logging


logger = logging.getLogger("collective.upgradeapi.testing.loud")

#: Lines the step logs, and characters per line (with the logger's prefix).
LINES = 50_000
LINE = 1000


def loud_10001(tool):
    filler = "x" * (LINE - 60)
    for number in range(LINES):
        logger.info("Loud step line %06d %s", number, filler)
