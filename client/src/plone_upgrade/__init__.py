"""``plone-upgrade``: see and run the upgrades of a Plone site.

Over HTTP (``--url``) it talks to the ``@upgrade`` services of
collective.upgradeapi and needs only ``click`` and ``requests``. In-process
(``--zope-conf``) it calls the door that collective.upgradeapi installs (see
:mod:`.doors`).

Modules: :mod:`.main` (the command group), :mod:`.commands`, :mod:`.run` and
:mod:`.locks` (the commands), :mod:`.door` (what a command needs of a site),
:mod:`.options` and :mod:`.doors` (what every command shares), :mod:`.http`,
:mod:`.answers` and :mod:`.watch` (the HTTP door), :mod:`.output` and
:mod:`.progress` (text).
"""

from plone_upgrade.main import cli
from plone_upgrade.main import main


__all__ = ["cli", "main"]
