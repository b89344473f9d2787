"""The in-process door: ``plone-upgrade --zope-conf PATH COMMAND``.

:func:`run` is the entry point ``plone_upgrade.doors: zope_conf``. It starts
Zope as ``Zope2.app()`` documents for scripts, then like ``zconsole run``
makes a request for ``http://localhost/`` and works as a ``Manager`` named
after the user the history records. The lock and history live in the
database: a server on the same ZEO or RelStorage database and this door
refuse each other's runs; a FileStorage is opened by one process only.
"""

from AccessControl.SecurityManagement import newSecurityManager
from AccessControl.SecurityManagement import noSecurityManager
from AccessControl.users import UnrestrictedUser
from collective.upgradeapi.cli.site import SiteDoor
from plone_upgrade.door import Failure
from plone_upgrade.door import OK
from plone_upgrade.door import Output
from Testing.makerequest import makerequest
from zope.component.hooks import setSite
from zope.event import notify
from zope.globalrequest import clearRequest
from zope.globalrequest import setRequest
from zope.traversing.interfaces import BeforeTraverseEvent

import click
import functools
import getpass
import json
import os
import traceback
import transaction


LOCKED = (
    " Another process holds the lock of its FileStorage: stop the Zope server "
    "that uses it, or serve the database with ZEO."
)


def run(f, where, user, as_json, options):
    """Run the command ``f(door, out, **options)`` on the sites ``where``
    (``plone_upgrade.options.Where``) chooses as ``user`` (default: the OS
    user); return the exit code, with ``--all-sites`` the worst."""
    import Zope2

    out = Output(as_json)
    os.environ["ZOPE_CONFIG"] = os.path.abspath(where.zope_conf)
    try:
        app = Zope2.app()
    except Exception as exc:
        name = type(exc).__name__
        hint = LOCKED if name == "LockError" else ""
        message = f"Cannot start Zope with {where.zope_conf}: {name}: {exc}.{hint}"
        return out.fail(Failure(message, error_type="ZopeStartFailed"))
    app = makerequest(app, environ={"SERVER_NAME": "localhost", "SERVER_PORT": "80"})
    app.REQUEST["PARENTS"] = [app]
    setRequest(app.REQUEST)
    try:
        user = user or os_user()
        manager = UnrestrictedUser(user, "", ["Manager"], [])
        newSecurityManager(app.REQUEST, manager.__of__(app.acl_users))
        return out.guard(on_sites, f, app, where, user, as_json, options)
    finally:
        transaction.abort()
        noSecurityManager()
        clearRequest()
        app._p_jar.close()
        Zope2.DB.close()


def os_user():
    """The operating system's user, for the history."""
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (a container's arbitrary uid)
        return f"uid {os.getuid()}"


def choose_sites(app, where):
    """The Plone sites the command works on (see ``Where``), or a Failure:
    no site, several without ``--site``, no site ``--site ID``."""
    from Products.CMFPlone.interfaces import IPloneSiteRoot

    sites = {s.getId(): s for s in app.objectValues() if IPloneSiteRoot.providedBy(s)}
    if where.all_sites or (len(sites) == 1 and not where.site_id):
        return list(sites.values())
    if where.site_id in sites:
        return [sites[where.site_id]]
    ids, place = list(sites), f"at the root of the database of {where.zope_conf}"
    if where.site_id:
        error_type = "SiteNotFound"
        message = (
            f"There is no Plone site {where.site_id!r} {place}. Plone sites: "
            f"{', '.join(ids) or 'none'}."
        )
    elif not sites:
        error_type, message = "NoSite", f"There is no Plone site {place}."
    else:
        error_type = "SeveralSites"
        message = (
            f"There are {len(ids)} Plone sites {place}: {', '.join(ids)}. Choose "
            "one with --site ID, or give --all-sites."
        )
    document = {"type": error_type, "zope_conf": where.zope_conf, "sites": ids}
    raise Failure(message, document=document)


def on_sites(f, app, where, user, as_json, options):
    """One site, or with ``--all-sites`` each, one JSON document for all."""
    sites = choose_sites(app, where)
    if not where.all_sites:
        return on_site(f, sites[0], user, Output(as_json), options)
    if not sites:
        click.echo("There is no Plone site at the root of the database.", err=True)
    documents, worst = {}, OK
    for index, site in enumerate(sites):
        site_id = site.getId()
        if not as_json:
            click.echo("\n" * bool(index) + f"=== {site_id} ===")
        sink = functools.partial(documents.__setitem__, site_id)
        out = Output(as_json, sink=sink, label=site_id)
        worst = max(worst, on_site(f, site, user, out, options))
    if as_json:
        click.echo(json.dumps({"sites": documents}, indent=2, ensure_ascii=False))
    return worst


def on_site(f, site, user, out, options):
    """Run the command ``f`` on one site; return its exit code."""
    try:
        transaction.begin()
        # As a request does on its way to the site: the local site, the
        # browser layers of its add-ons.
        notify(BeforeTraverseEvent(site, site.REQUEST))
        return out.guard(f, SiteDoor(site, user), out, **options)
    except Exception as exc:
        out.note(traceback.format_exc().rstrip())
        message = f"Unexpected error: {type(exc).__name__}: {exc}"
        return out.fail(Failure(message, error_type=type(exc).__name__))
    finally:
        transaction.abort()
        setSite(None)
