"""``plone-upgrade``: see and run the upgrades of a Plone site, over HTTP
(:mod:`.http`, needs only click and requests) or in-process (``--zope-conf``,
the door collective.upgradeapi adds; see :mod:`.options`)."""

from plone_upgrade.main import cli
from plone_upgrade.main import main


__all__ = ["cli", "main"]
