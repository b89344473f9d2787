"""``plone-upgrade``: see and run the upgrades of a Plone site.

Over HTTP (``--url``) it talks to the ``@upgrade`` services and imports
neither Zope nor Plone, so it runs on a CI runner with just ``click`` and
``requests``. In-process (``--zope-conf``) it starts Zope itself and calls
the engine API. See ``docs/cli.md``.

Modules: :mod:`.main` (the command group), one module per command
(:mod:`.waiting`, :mod:`.checking`, :mod:`.running`, :mod:`.stamping`,
:mod:`.history`, :mod:`.locking`), :mod:`.options` (what every command
shares), :mod:`.doors` (HTTP or in-process), :mod:`.output` (text tables),
:mod:`.progressbar` (the progress of ``run``); over HTTP :mod:`.client`,
:mod:`.answers` and :mod:`.watch`; in-process (imported only then)
:mod:`.inprocess` and :mod:`.sitedoor`.
"""

from collective.upgradeapi.cli.main import cli
from collective.upgradeapi.cli.main import main


__all__ = ["cli", "main"]


if __name__ == "__main__":
    main()
