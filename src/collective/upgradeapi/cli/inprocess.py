"""The in-process door: ``plone-upgrade --zope-conf PATH COMMAND``.

:func:`run` is the entry point ``plone_upgrade.doors: zope_conf`` that the
client calls: imported only with ``--zope-conf``, this is where Zope starts,
as ``Zope2.app()`` documents for scripts (``ZOPE_CONFIG``, no WSGI server).
Then, like ``zconsole run``: a request for ``http://localhost/`` (so that the
``@id`` of a site ``Plone`` is ``http://localhost/Plone/@upgrade``) and a
security manager for a ``Manager`` named after the user the history records.
Before a command works on a site, the request traverses into it as a request
of the site would (site hook, browser layers).

The lock and history live in the database: a ``runwsgi`` process serving the
same ZEO or RelStorage database and this door refuse each other's runs. A
FileStorage can be opened by one process only: stop the server, or use ZEO.
"""

from AccessControl.SecurityManagement import newSecurityManager
from AccessControl.SecurityManagement import noSecurityManager
from AccessControl.users import UnrestrictedUser
from collective.upgradeapi.cli.site import SiteDoor
from plone_upgrade.door import ERROR
from plone_upgrade.door import Failure
from plone_upgrade.door import OK
from plone_upgrade.options import Output
from Testing.makerequest import makerequest
from zope.component.hooks import setSite
from zope.event import notify
from zope.globalrequest import clearRequest
from zope.globalrequest import setRequest
from zope.traversing.interfaces import BeforeTraverseEvent

import click
import getpass
import json
import os
import traceback
import transaction


#: The request's server: the ``@id`` of a site ``Plone`` is
#: ``http://localhost/Plone/@upgrade``.
ENVIRON = {"SERVER_NAME": "localhost", "SERVER_PORT": "80"}


def os_user():
    """The operating system's user, for the history."""
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (a container's arbitrary uid)
        return f"uid {os.getuid()}"


def start_zope(zope_conf):
    """Start Zope with ``zope_conf``; return the root, with a request.

    :raises plone_upgrade.door.Failure: Zope cannot start (the message says why).
    """
    import Zope2

    os.environ["ZOPE_CONFIG"] = os.path.abspath(zope_conf)
    try:
        app = Zope2.app()
    except Exception as exc:
        hint = ""
        if exc.__class__.__name__ == "LockError":
            hint = (
                " Another process holds the lock of its FileStorage: stop the "
                "Zope server that uses it, or serve the database with ZEO."
            )
        raise Failure(
            f"Cannot start Zope with {zope_conf}: {exc.__class__.__name__}: "
            f"{exc}.{hint}",
            error_type="ZopeStartFailed",
        )
    app = makerequest(app, environ=dict(ENVIRON))
    app.REQUEST["PARENTS"] = [app]
    setRequest(app.REQUEST)
    return app


def stop_zope(app):
    """Abort what is left, close the connection and the database."""
    import Zope2

    transaction.abort()
    noSecurityManager()
    clearRequest()
    app._p_jar.close()
    if Zope2.DB is not None:
        Zope2.DB.close()


def plone_sites(app):
    """The Plone sites at the root of the database, by id."""
    from Products.CMFPlone.interfaces import IPloneSiteRoot

    return [obj for obj in app.objectValues() if IPloneSiteRoot.providedBy(obj)]


def choose_sites(app, where):
    """The sites the command works on; see ``plone_upgrade.doors.Where``.

    :raises plone_upgrade.door.Failure: no site, several without ``--site``, or no
        site ``--site ID``.
    """
    sites = plone_sites(app)
    ids = [site.getId() for site in sites]
    listed = ", ".join(ids)
    if where.all_sites:
        return sites
    if where.site_id:
        if where.site_id not in ids:
            raise Failure(
                f"There is no Plone site {where.site_id!r} at the root of the "
                f"database of {where.zope_conf}. Plone sites: {listed or 'none'}.",
                document=_sites_error("SiteNotFound", where, ids),
            )
        return [sites[ids.index(where.site_id)]]
    if not sites:
        raise Failure(
            f"There is no Plone site at the root of the database of {where.zope_conf}.",
            document=_sites_error("NoSite", where, ids),
        )
    if len(sites) > 1:
        raise Failure(
            f"There are {len(sites)} Plone sites at the root of the database of "
            f"{where.zope_conf}: {listed}. Choose one with --site ID, or give "
            "--all-sites.",
            document=_sites_error("SeveralSites", where, ids),
        )
    return sites


def _sites_error(error_type, where, ids):
    return {"type": error_type, "zope_conf": where.zope_conf, "sites": ids}


def run(f, where, user, as_json, options):
    """Run the command ``f`` on the chosen sites; return the exit code.

    :param f: the command, called as ``f(door, out, **options)``.
    :param where: a ``plone_upgrade.doors.Where`` with ``zope_conf``.
    :param user: the user the history records; the OS user if ``None``.
    """
    out = Output(as_json)
    try:
        app = start_zope(where.zope_conf)
    except Failure as failure:
        out.fail(failure)
        return failure.exit_code
    try:
        user = user or os_user()
        manager = UnrestrictedUser(user, "", ["Manager"], [])
        newSecurityManager(app.REQUEST, manager.__of__(app.acl_users))
        try:
            sites = choose_sites(app, where)
        except Failure as failure:
            out.fail(failure)
            return failure.exit_code
        if not where.all_sites:
            return on_site(f, app, sites[0], user, out, options)
        return _on_every_site(f, app, sites, user, as_json, options)
    finally:
        stop_zope(app)


def _on_every_site(f, app, sites, user, as_json, options):
    """``--all-sites``: one site after the other, one JSON document for all."""
    if not sites:
        click.echo("There is no Plone site at the root of the database.", err=True)
    documents = {}
    worst = OK
    for index, site in enumerate(sites):
        site_id = site.getId()
        if not as_json:
            if index:
                click.echo()
            click.echo(f"=== {site_id} ===")
        out = Output(
            as_json,
            sink=lambda document, site_id=site_id: documents.update(
                {site_id: document}
            ),
            label=site_id,
        )
        worst = max(worst, on_site(f, app, site, user, out, options))
    if as_json:
        click.echo(json.dumps({"sites": documents}, indent=2, ensure_ascii=False))
    return worst


def on_site(f, app, site, user, out, options):
    """Run the command ``f`` on one site; return its exit code."""
    request = app.REQUEST
    try:
        transaction.begin()
        # As a request does on its way to the site: the local site, the
        # browser layers of its add-ons.
        notify(BeforeTraverseEvent(site, request))
        return f(SiteDoor(site, user), out, **options)
    except Failure as failure:
        out.fail(failure)
        return failure.exit_code
    except Exception as exc:
        out.note(traceback.format_exc().rstrip())
        out.fail(
            Failure(
                f"Unexpected error: {exc.__class__.__name__}: {exc}",
                error_type=exc.__class__.__name__,
            )
        )
        return ERROR
    finally:
        transaction.abort()
        setSite(None)
