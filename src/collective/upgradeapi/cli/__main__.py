"""``python -m collective.upgradeapi.cli``: the same as ``plone-upgrade``."""

from collective.upgradeapi.cli import main


if __name__ == "__main__":
    main()
