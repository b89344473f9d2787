"""``plone-upgrade``: see and run the upgrades of a Plone site, over HTTP
(:mod:`.http`, needs only click and requests) or in-process (``--zope-conf``,
the door collective.upgradeapi adds; see :mod:`.options`)."""

from plone_upgrade import commands  # noqa: F401 (the commands join the group)
from plone_upgrade import run  # noqa: F401
from plone_upgrade.options import cli
from plone_upgrade.options import main


__all__ = ["cli", "main"]
