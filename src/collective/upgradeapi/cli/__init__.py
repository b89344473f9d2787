"""The in-process door of ``plone-upgrade`` (``--zope-conf``).

The command-line client itself is the distribution collective.upgradeapi.client
(module :mod:`plone_upgrade`); this package adds what needs Zope:
:mod:`.inprocess` starts Zope and chooses the sites, :mod:`.site` is the door
to one site. ``python -m collective.upgradeapi.cli`` is ``plone-upgrade``.
"""

from plone_upgrade import main


__all__ = ["main"]
