"""``python -m plone_upgrade``: the same as ``plone-upgrade``."""

from plone_upgrade import main


main()
