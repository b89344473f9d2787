"""Profiles of every shape GenericSetup allows, for the parity tests.

Each profile (``collective.upgradeapi.testing:shape-*``, registered by
``shapes.zcml``) has one shape of upgrade steps that real add-ons use. They
are registered with the test layers but installed only by the parity tests
(``tests/parity/``), which rewind them to :data:`REWIND` and compare what
GenericSetup and Plone list and run with what this add-on lists and runs.
Every step leaves a marker (:mod:`.steps`), so the order of the steps that
ran is part of the end state the tests compare.
"""

from collective.upgradeapi.testing.steps import _mark
from collective.upgradeapi.testing.steps import marker


PREFIX = "collective.upgradeapi.testing:shape-"

#: Shape profile id -> the version the parity tests rewind it to.
REWIND = {
    f"{PREFIX}groups": "1000",
    f"{PREFIX}samedest": "1000",
    f"{PREFIX}checker": "1000",
    f"{PREFIX}dotted": "1.0",
    f"{PREFIX}lagging": "1019",
    f"{PREFIX}downgraded": "600",
    f"{PREFIX}wanted": "10",
    f"{PREFIX}needs": "10",
    f"{PREFIX}installs": "1",
}

#: Installed by a step of the ``installs`` shape, not by the tests.
EXTRA = f"{PREFIX}extra"


def never(tool):
    """A checker that says the step does not apply (already applied)."""
    return False


def always(tool):
    """A checker that says the step applies."""
    return True


def install_extra(tool):
    """A step that installs another profile, as add-ons' steps do."""
    tool.runAllImportStepsFromProfile(f"profile-{EXTRA}")
    _mark(tool, "installs-extra")


# Markers with dots, which a handler's name (``steps.mark_<marker>``) cannot hold.
dotted_1 = marker("dotted-1.0.1")
dotted_2 = marker("dotted-2.0")
dotted_10 = marker("dotted-10.0")
