"""``plone-upgrade``: a command-line client of the ``@upgrade`` services.

It speaks HTTP only and imports neither Zope nor Plone, so it runs on a CI
runner with just ``click`` and ``requests``. See ``docs/cli.md``.
"""

from collective.upgradeapi.cli.commands import cli
from collective.upgradeapi.cli.commands import main


__all__ = ["cli", "main"]


if __name__ == "__main__":
    main()
