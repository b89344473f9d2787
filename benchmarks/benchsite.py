"""The benchmark's site: a stock Plone site on a file-backed database, in process.

Used by ``bench_upgrade.py`` only; nothing here is part of the package.

- :func:`set_up`: a stock Plone site with plone.restapi and this add-on (the
  test suite's ``StockLayer``), whose changes are written to a FileStorage
  in a temporary directory (a ``DemoStorage`` stacked on the layer's
  database with a ``FileStorage`` for its changes), so that what a run
  appends to ``Data.fs`` can be measured in bytes and transactions.
- :class:`Services`: the ``@upgrade`` services of this add-on and of
  plone.restapi, called in process on the same site and request.
- Benchmark-only profiles and upgrade steps, registered from here (never by
  the package): the document steps of a real run, a step that logs a lot,
  slow steps and trivial steps.
"""

from pathlib import Path

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import transaction


CORE = "Products.CMFPlone:plone"
#: The product name of every benchmark profile (``upgradeapi_bench:<name>``).
PRODUCT = "upgradeapi_bench"
#: Objects in the connection cache, as a zope.conf database without a
#: cache-size of its own (ZODB's default; the test layers' databases keep 400).
CACHE_SIZE = int(os.environ.get("BENCH_CACHE_SIZE", "5000"))

logger = logging.getLogger("upgradeapi_bench")


class Site:
    """The portal, its request and the FileStorage its changes go to."""

    def __init__(self, layer, path, storage):
        self.layer = layer
        self.portal = layer["portal"]
        self.request = layer["request"]
        self.path = path
        self.storage = storage
        self.setup = self.portal.portal_setup
        #: the version of the core profile in its code (its metadata.xml).
        self.core_fs = self.setup.getVersionForProfile(CORE)

    def size(self):
        """Bytes of the FileStorage (what was appended since it was created)."""
        return os.path.getsize(self.path)

    def last_tid(self):
        return self.storage.lastTransaction()

    def transactions_since(self, tid):
        """``(count, bytes)`` of the transactions committed after ``tid``."""
        count = size = 0
        for txn in self.storage.iterator(start=_next_tid(tid)):
            count += 1
            size += sum(len(record.data or b"") for record in txn)
        return count, size

    def stored_size(self, obj):
        """Bytes of the stored pickles of ``obj`` and of every persistent
        object reachable from it that is not reachable from elsewhere (its
        own sub-records): what one history entry costs in the database."""
        from ZODB.serialize import referencesf

        storage = obj._p_jar.db().storage
        seen = set()
        todo = [obj._p_oid]
        total = 0
        while todo:
            oid = todo.pop()
            if oid in seen:
                continue
            seen.add(oid)
            data, _serial = storage.load(oid)
            total += len(data)
            todo.extend(referencesf(data))
        return total

    def rewind(self, versions):
        """Record ``{profile id: version}`` and commit."""
        transaction.abort()
        for profile_id, version in versions.items():
            self.setup.setLastVersionForProfile(profile_id, version)
        transaction.commit()

    def close(self):
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


def _next_tid(tid):
    from ZODB.utils import p64
    from ZODB.utils import u64

    return p64(u64(tid) + 1)


def set_up():
    """Set up the layers and return a :class:`Site` on a file-backed database."""
    from collective.upgradeapi.testing import StockLayer
    from plone.app.testing import FunctionalTesting
    from plone.app.testing import setRoles
    from plone.app.testing import TEST_USER_ID
    from plone.testing import zodb
    from ZODB.DB import DB
    from ZODB.DemoStorage import DemoStorage
    from ZODB.FileStorage import FileStorage

    directory = tempfile.mkdtemp(prefix="upgradeapi-bench-")
    path = os.path.join(directory, "Data.fs")
    opened = {}

    def file_backed(db=None, name=None):
        changes = opened["storage"] = FileStorage(path)
        return DB(
            DemoStorage(name=name, base=db.storage, changes=changes),
            cache_size=CACHE_SIZE,
        )

    bench = FunctionalTesting(bases=(StockLayer(),), name="CollectiveUpgradeAPI:Bench")
    ordered = []

    def visit(layer):
        for base in layer.__bases__:
            visit(base)
        if layer not in ordered:
            ordered.append(layer)

    visit(bench)
    # Quiet: the layers' own set-up logs are not what is measured.
    logging.getLogger().setLevel(logging.WARNING)
    for layer in ordered:
        layer.setUp()
    stacked = zodb.stackDemoStorage
    zodb.stackDemoStorage = file_backed
    try:
        for layer in ordered:
            if hasattr(layer, "testSetUp"):
                layer.testSetUp()
    finally:
        zodb.stackDemoStorage = stacked
    site = Site(bench, path, opened["storage"])
    setRoles(site.portal, TEST_USER_ID, ["Manager"])
    transaction.commit()
    return site


class Services:
    """The ``@upgrade`` services (this add-on's, plone.restapi's) in process.

    As plone.rest's ZCML directive builds service classes; a fresh request
    environment for each call (a service remembers its answer there, for
    Zope's retries of one request).
    """

    def __init__(self, site):
        from collective.upgradeapi.services.upgrade.get import UpgradeGet
        from collective.upgradeapi.services.upgrade.post import UpgradePost
        from plone.restapi.services.upgrade.get import UpgradeSiteGet
        from plone.restapi.services.upgrade.post import UpgradeSitePost
        from Products.Five.browser import BrowserView

        self.site = site
        self.pristine = dict(site.request.environ)
        self.classes = {
            "ours_get": UpgradeGet,
            "ours_post": UpgradePost,
            "builtin_get": UpgradeSiteGet,
            "builtin_post": UpgradeSitePost,
        }
        self.views = {
            name: type(factory.__name__, (factory, BrowserView), {})
            for name, factory in self.classes.items()
        }

    def call(self, name, body=None):
        request = self.site.request
        request.environ = dict(self.pristine)
        if getattr(request, "_orig_env", None) is not None:
            request._orig_env = dict(self.pristine)
        method = "GET" if body is None else "POST"
        request.method = request.environ["REQUEST_METHOD"] = method
        if body is not None:
            request.environ["CONTENT_TYPE"] = "application/json"
            request.set("BODY", json.dumps(body).encode())
        return self.views[name](self.site.portal, request).reply()

    def caller(self, name, body=None):
        return lambda: self.call(name, body)


# -- benchmark-only profiles and steps -----------------------------------


class Profiles:
    """Registers benchmark profiles and steps; :meth:`remove` undoes it all."""

    def __init__(self, site):
        self.site = site
        self.directory = tempfile.mkdtemp(prefix="upgradeapi-bench-profiles-")
        self.registered = []

    def add(self, name, steps, first=1000, title=None):
        """An installed profile ``upgradeapi_bench:<name>`` at version
        ``first`` with ``steps``: ``[(title, handler)]``, one version each.

        :returns: the profile id.
        """
        from Products.GenericSetup import EXTENSION
        from Products.GenericSetup.registry import _profile_registry
        from Products.GenericSetup.upgrade import _registerUpgradeStep
        from Products.GenericSetup.upgrade import UpgradeStep

        last = first + len(steps)
        path = Path(self.directory) / name
        path.mkdir()
        (path / "metadata.xml").write_text(
            f"<metadata><version>{last}</version></metadata>"
        )
        _profile_registry.registerProfile(
            name, title or f"Benchmark {name}", "", str(path), PRODUCT, EXTENSION
        )
        profile_id = f"{PRODUCT}:{name}"
        for number, (step_title, handler) in enumerate(steps):
            _registerUpgradeStep(
                UpgradeStep(
                    step_title,
                    profile_id,
                    str(first + number),
                    str(first + number + 1),
                    "",
                    handler,
                )
            )
        self.site.setup.setLastVersionForProfile(profile_id, str(first))
        transaction.commit()
        self.registered.append(profile_id)
        return profile_id

    def add_trivial(self, count, steps):
        """``count`` profiles of ``steps`` steps that do nothing."""
        return [
            self.add(f"trivial{index:04d}x{steps}", [("Trivial", _nothing)] * steps)
            for index in range(count)
        ]

    def remove(self):
        from Products.GenericSetup.registry import _profile_registry
        from Products.GenericSetup.upgrade import _upgrade_registry

        transaction.abort()
        for profile_id in self.registered:
            self.site.setup.unsetLastVersionForProfile(profile_id)
            _profile_registry.unregisterProfile(profile_id.split(":")[1], PRODUCT)
            with contextlib.suppress(KeyError):
                del _upgrade_registry._registry[profile_id]
        transaction.commit()
        self.registered = []
        shutil.rmtree(self.directory, ignore_errors=True)


def _nothing(tool):
    return None


# -- the documents site ----------------------------------------------------

FOLDER = "bench-documents"


def add_documents(site, count, batch=500):
    """``count`` Documents with some text in a folder, committed."""
    from plone.app.textfield.value import RichTextValue

    portal = site.portal
    if FOLDER not in portal.objectIds():
        portal.invokeFactory("Folder", FOLDER, title="Benchmark documents")
    folder = portal[FOLDER]
    existing = len(folder.objectIds())
    for index in range(existing, count):
        folder.invokeFactory(
            "Document",
            f"doc-{index:05d}",
            title=f"Benchmark document {index}",
            description=f"A document of the benchmark, number {index}.",
            text=RichTextValue(
                f"<p>Body of document {index}: " + "lorem ipsum " * 20 + "</p>",
                "text/html",
                "text/x-html-safe",
            ),
        )
        if (index + 1) % batch == 0:
            transaction.commit()
    transaction.commit()
    return len(folder.objectIds())


def _documents(tool):
    from Products.CMFCore.utils import getToolByName

    catalog = getToolByName(tool, "portal_catalog")
    for brain in catalog.unrestrictedSearchResults(portal_type="Document"):
        yield brain._unrestrictedGetObject()


def reindex_text(tool):
    """Reindex every document's full text (SearchableText)."""
    count = 0
    for doc in _documents(tool):
        doc.reindexObject(idxs=["SearchableText"])
        count += 1
    logger.info("Reindexed the text of %d documents.", count)


def tag_documents(tool):
    """Change every third document (a subject with the time) and reindex it."""
    stamp = f"upgraded-{time.monotonic_ns()}"
    count = 0
    for index, doc in enumerate(_documents(tool)):
        if index % 3 == 0:
            doc.setSubject((stamp,))
            doc.reindexObject(idxs=["Subject"])
            count += 1
    logger.info("Tagged %d documents with %s.", count, stamp)


def batched_reindex(tool):
    """Reindex every document's title, committing every 1,000 (as steps that
    bound their memory do)."""
    for count, doc in enumerate(_documents(tool), 1):
        doc.reindexObject(idxs=["Title", "sortable_title"])
        if count % 1000 == 0:
            transaction.commit()
            logger.info("Reindexed %d titles; committed.", count)


def registry_record(tool):
    """A small configuration change, as many real steps are."""
    from plone.registry.interfaces import IRegistry
    from zope.component import getUtility

    registry = getUtility(IRegistry)
    registry.records["plone.site_title"].value = f"Plone {time.monotonic_ns()}"
    logger.info("Changed the site title.")


DOCUMENT_STEPS = [
    ("Bench: reindex the text of every document", reindex_text),
    ("Bench: tag every document", tag_documents),
    ("Bench: batched title reindex, committing", batched_reindex),
    ("Bench: a registry change", registry_record),
]


def noisy(lines):
    """A step that logs ``lines`` INFO lines of about 80 bytes."""

    def step(tool):
        for number in range(lines):
            logger.info("Noisy step: line %07d of %d, %s", number, lines, "x" * 40)

    return step


def sleeping(seconds):
    """A step that sleeps ``seconds`` (a step that takes time, writing nothing)."""

    def step(tool):
        time.sleep(seconds)

    return step
