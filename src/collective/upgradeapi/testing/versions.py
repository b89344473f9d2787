"""Core profile versions of the Plone under test, for tests and benchmarks.

``FS`` is the version the code provides; ``LAST`` the source of its last core
upgrade step (one step pending); ``OLD`` an older version that leaves a dozen
or more real core steps pending and upgrades cleanly on a fresh site.
"""

from collective.upgradeapi.compat import PLONE_VERSION


CORE = "Products.CMFPlone:plone"

#: Plone version line -> (FS, LAST, OLD)
VERSIONS = {
    (6, 0): ("6026", "6025", "6013"),
    (6, 1): ("6112", "6111", "6100"),
    (6, 2): ("6205", "6204", "6100"),
}

FS, LAST, OLD = VERSIONS[PLONE_VERSION]

#: The Plone version line the documentation's HTTP examples are recorded on.
DOCS_PLONE = (6, 2)
