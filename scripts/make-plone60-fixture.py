"""Make ``tests/fixtures/plone60.fs.gz``: a small database made by Plone 6.0.

The tests of ``tests/parity/test_older_database.py`` upgrade copies of it on
newer Plone versions (core and core add-ons) and check the dry run's change
report against what the real run changed. Regenerate it with the Plone 6.0
virtualenv (Plone 6.0.15 when it was made)::

    .venv-6.0/bin/python scripts/make-plone60-fixture.py [OUTPUT]

OUTPUT defaults to ``tests/fixtures/plone60.fs.gz``. The script makes a
throw-away Zope instance (``mkwsgiinstance``) whose ``zope.conf`` has a
FileStorage in a temporary folder, starts Zope in this process as
``zconsole`` does (``site.zcml`` loads every installed Products package and
``plone.autoinclude`` the add-ons), and creates:

- the Plone site ``Plone`` as the classic "Create a Plone site" form does
  (``plone.app.caching`` and ``plonetheme.barceloneta``, no Volto), with
  Plone's example content (``setup_content``: the front page, ``news``,
  ``events``, ``Members``);
- plone.app.contenttypes content: two folders with documents, one of them
  published, a news item, an event, a link and a collection.

No file or image (they would need a blob storage next to the FileStorage).
Then it packs the storage (no history left), and writes it gzipped. Nothing
of this add-on is installed in the site: it is a site as Plone 6.0 leaves it.
"""

from AccessControl.SecurityManagement import newSecurityManager
from pathlib import Path
from plone import api
from Products.CMFPlone.factory import addPloneSite
from Testing.makerequest import makerequest
from zope.component.hooks import setSite
from zope.globalrequest import setRequest
from Zope2.Startup.run import make_wsgi_app

import gzip
import shutil
import subprocess
import sys
import tempfile
import transaction
import Zope2


SITE_ID = "Plone"
EXTENSIONS = ("plone.app.caching:default", "plonetheme.barceloneta:default")
DEFAULT_OUTPUT = Path(__file__).parent.parent / "tests" / "fixtures" / "plone60.fs.gz"

ZOPE_CONF = """\
%define INSTANCE {instance}
instancehome $INSTANCE
%define CLIENTHOME {instance}/var
clienthome $CLIENTHOME
debug-mode off
security-policy-implementation C
verbose-security off
default-zpublisher-encoding utf-8
<zodb_db main>
    <filestorage>
      path {data_fs}
    </filestorage>
    mount-point /
</zodb_db>
"""

#: (container path, portal type, id, properties, publish?)
CONTENT = (
    ("", "Folder", "about", {"title": "About us"}, True),
    ("about", "Document", "team", {"title": "The team"}, True),
    ("about", "Document", "history", {"title": "Our history"}, False),
    ("", "Folder", "projects", {"title": "Projects"}, False),
    ("projects", "Document", "upgrade", {"title": "The upgrade project"}, False),
    (
        "projects",
        "Link",
        "plone",
        {"title": "Plone", "remoteUrl": "https://plone.org"},
        False,
    ),
    ("news", "News Item", "release", {"title": "We run Plone 6.0"}, True),
    ("events", "Event", "sprint", {"title": "A sprint"}, True),
    (
        "",
        "Collection",
        "all-pages",
        {
            "title": "All pages",
            "query": [
                {
                    "i": "portal_type",
                    "o": "plone.app.querystring.operation.selection.any",
                    "v": ["Document"],
                }
            ],
        },
        False,
    ),
)


def make_instance(base):
    """A Zope instance in ``base`` whose database is ``base/Data.fs``."""
    bin_dir = Path(sys.executable).parent
    instance = base / "instance"
    subprocess.run(
        [str(bin_dir / "mkwsgiinstance"), "-d", str(instance), "-u", "admin:admin"],
        check=True,
    )
    data_fs = base / "Data.fs"
    conf = instance / "etc" / "zope.conf"
    conf.write_text(ZOPE_CONF.format(instance=instance, data_fs=data_fs))
    return conf, data_fs


def create_site(app):
    """The classic Plone site with its content, committed."""
    admin = app.acl_users.getUserById("admin")
    newSecurityManager(None, admin.__of__(app.acl_users))
    site = addPloneSite(
        app,
        SITE_ID,
        title="A Plone 6.0 site",
        extension_ids=EXTENSIONS,
        setup_content=True,
    )
    setSite(site)
    for parent, portal_type, item_id, properties, publish in CONTENT:
        container = site.unrestrictedTraverse(parent) if parent else site
        obj = api.content.create(
            container=container, type=portal_type, id=item_id, **properties
        )
        if publish:
            api.content.transition(obj=obj, transition="publish")
    transaction.commit()
    return site


def main(output):
    with tempfile.TemporaryDirectory() as tmp:
        conf, data_fs = make_instance(Path(tmp))
        make_wsgi_app({}, str(conf))
        app = makerequest(Zope2.app())
        app.REQUEST["PARENTS"] = [app]
        setRequest(app.REQUEST)
        create_site(app)
        db = app._p_jar.db()
        app._p_jar.close()
        db.pack()
        db.close()
        output.parent.mkdir(parents=True, exist_ok=True)
        with data_fs.open("rb") as source, gzip.open(output, "wb") as target:
            shutil.copyfileobj(source, target)
        sys.stdout.write(
            f"Wrote {output}: {output.stat().st_size} bytes "
            f"({data_fs.stat().st_size} uncompressed).\n"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT)
