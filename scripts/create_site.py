"""Create the development Plone site, once.

Run with ``zconsole run etc/zope.conf scripts/create_site.py [--rewind VERSION]``
(``make start`` does). ``app`` is provided by ``zconsole``.

- Creates the Plone site ``Plone`` (Volto-ready: ``plone.volto:default``) unless
  it exists already.
- With ``--rewind VERSION`` records the core profile at VERSION, so that the
  site has real pending core upgrades to try ``@upgrade`` on.
"""

from AccessControl.SecurityManagement import newSecurityManager
from Products.CMFPlone.factory import _DEFAULT_PROFILE
from Products.CMFPlone.factory import addPloneSite
from Testing.makerequest import makerequest
from zope.component.hooks import setSite

import argparse
import sys
import transaction


SITE_ID = "Plone"
EXTENSIONS = ("plone.restapi:default", "plone.volto:default")


def main(app, argv):
    parser = argparse.ArgumentParser(prog="create_site.py")
    parser.add_argument("--rewind", default="", help="core profile version to record")
    options = parser.parse_args(argv)

    app = makerequest(app)
    admin = app.acl_users.getUserById("admin")
    newSecurityManager(None, admin.__of__(app.acl_users))

    if SITE_ID in app.objectIds():
        site = app[SITE_ID]
        sys.stdout.write(f"Plone site {SITE_ID!r} exists already.\n")
    else:
        site = addPloneSite(app, SITE_ID, title="Plone site", extension_ids=EXTENSIONS)
        sys.stdout.write(f"Created the Plone site {SITE_ID!r}.\n")
    setSite(site)
    if options.rewind:
        site.portal_setup.setLastVersionForProfile(_DEFAULT_PROFILE, options.rewind)
        sys.stdout.write(
            f"Recorded {_DEFAULT_PROFILE} at version {options.rewind}: "
            "the site now has pending core upgrades.\n"
        )
    transaction.commit()


def script_arguments(argv):
    """The arguments after this script's path (zconsole keeps its own in argv)."""
    for index, arg in enumerate(argv):
        if arg.endswith("create_site.py"):
            return argv[index + 1 :]
    return argv[1:]


if __name__ == "__main__":
    main(app, script_arguments(sys.argv))  # noqa: F821 (app comes from zconsole)
