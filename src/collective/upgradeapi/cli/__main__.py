"""``python -m collective.upgradeapi.cli``: the same as ``plone-upgrade``."""

from plone_upgrade import main


main()
