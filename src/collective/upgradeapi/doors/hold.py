"""The write hold: while a real run holds writes, other writers wait.

Each real run has a mode (:func:`collective.upgradeapi.config.hold_mode`),
kept in its lock's ``writes_held``: ``whole_run`` holds writes while the run
holds the lock; ``retries`` (the default) only while a unit runs again after
a write conflict (the lock's ``writes_held.holding``, set by the run before
the unit runs again and cleared when it commits); ``never`` never.

A subscriber to Zope's ``IPubBeforeCommit`` runs just before the publisher
commits a request's transaction. When that transaction changed objects in
the site's database, it joins the transaction a data manager
(:class:`HoldCheck`) that votes last: there, the site's lock is read, and
when it holds writes, :class:`WriteHeld` is raised: the
transaction is aborted (nothing the request did is committed, no
after-success hook runs) and Zope answers 503 with ``Retry-After``. Requests
that write nothing, reads, go on.

- The lock is read as committed now, through a connection of its own (the
  request's connection shows the database as it was when the request began),
  and only for requests that wrote something.
- It is read while the request's transaction holds the storage's commit lock
  (the database's own data manager voted first): a run that starts holding
  writes commits that after the write (which its next attempt then sees), or
  before the check (which then holds the write). No write slips between a
  hold and the attempt it protects.
- The run's own request is never held: the run commits through its own
  transaction manager and releases the lock before the publisher commits,
  and the ``@upgrade`` services are left alone anyway.
- Logging in is let through (Plone's login form, plone.restapi's ``@login``
  and ``@login-renew``): it writes only what records the login, and users
  must be able to log in to read.
- A lock whose holder looks dead (stale) holds nothing: writes go on until
  someone breaks it.
- Only requests published by Zope are held; scripts, ``zconsole run`` and
  clock servers that commit on their own are not.
"""

from collective.upgradeapi import config
from collective.upgradeapi.doors.classic import fresh_lock
from collective.upgradeapi.doors.classic import plone_site
from collective.upgradeapi.errors import started_by
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.services.base import UpgradeService
from plone.restapi.services.auth.login import Login
from plone.restapi.services.auth.renew import Renew
from Products.CMFPlone.browser.login.login import LoginForm
from ZODB.Connection import Connection
from zope.component import adapter
from ZPublisher.interfaces import IPubBeforeCommit

import logging
import transaction


logger = logging.getLogger("collective.upgradeapi")

#: Seconds a held writer is asked to wait before it tries again.
RETRY_AFTER = 30

#: What is published by requests that are never held: the upgrade services,
#: and logging in.
LET_THROUGH = (UpgradeService, Login, Renew, LoginForm)


def changed(txn, db):
    """Whether ``txn`` changed objects of the database ``db``.

    A ZODB connection joins the transaction at its first change; what it
    changed is registered on it until the commit (or kept in its savepoint
    storage once a savepoint was taken).
    """
    for resource in getattr(txn, "_resources", ()):
        if not isinstance(resource, Connection) or resource.db() is not db:
            continue
        if (
            getattr(resource, "_registered_objects", None)
            or getattr(resource, "_added", None)
            or getattr(resource, "_savepoint_storage", None) is not None
        ):
            return True
    return False


@adapter(IPubBeforeCommit)
def hold_writers(event):
    """Have a request that wrote checked at the end of its commit."""
    request = event.request
    if isinstance(request.get("PUBLISHED"), LET_THROUGH):
        return
    site = plone_site()
    if site is None:
        return
    txn = transaction.get()
    if changed(txn, site._p_jar.db()):
        txn.join(HoldCheck(site, request))


class WriteHeld(UpgradeError):
    """A request that would write, while a real run holds writes: 503 with
    ``Retry-After``."""

    status = 503
    error_type = "WriteHeld"

    def __init__(self, lock):
        held = lock.get("writes_held") or {}
        until = (
            "while it runs again a part of its work that met a write conflict"
            if held.get("holding")
            else "until it ends (hold_writes)"
        )
        super().__init__(
            f"{started_by(lock)} is running on this site, and writes are held off "
            f"{until}. Nothing of this request was saved. Try again in "
            f"{RETRY_AFTER} seconds; GET @upgrade/status shows the run's progress.",
            lock=lock,
            retry_after=RETRY_AFTER,
        )
        self.headers = {"Retry-After": str(RETRY_AFTER)}


class HoldCheck:
    """A data manager that raises :class:`WriteHeld` at its vote, the last
    one, while the site's lock holds writes."""

    transaction_manager = None

    def __init__(self, site, request):
        self.site = site
        self.request = request

    def sortKey(self):  # noqa: N802 (the data manager interface's name)
        return "~collective.upgradeapi.write-hold"

    def tpc_vote(self, txn):
        try:
            lock = fresh_lock(self.site)
        except Exception:
            logger.warning(
                "Write hold: the upgrade lock could not be read; the write goes on.",
                exc_info=True,
            )
            return
        if lock is None or lock.get("dry_run") or lock.get("stale"):
            return
        held = lock.get("writes_held") or {}
        if held.get("mode") != config.WHOLE_RUN and not held.get("holding"):
            return
        logger.info(
            "Write hold: %s %s was not committed, an upgrade is running.",
            self.request.get("REQUEST_METHOD"),
            self.request.get("PATH_INFO"),
        )
        raise WriteHeld(lock)

    def _nothing(self, txn):
        """It writes nothing: the rest of the two-phase commit is a no-op."""

    abort = tpc_begin = commit = tpc_finish = tpc_abort = _nothing
