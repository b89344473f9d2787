"""Zope instances for the in-process door's tests (``test_cli_inprocess.py``).

:class:`Instance`: an instance with a FileStorage made with
``mkwsgiinstance`` (:func:`zope_processes.make_instance`: the site ``Plone``,
the test-only profiles loaded), plus a plain Plone site ``cms`` with the test
profiles ``base`` and ``broken``. :func:`served_zeo`: a ZEO server and a
``runwsgi`` process serving its site ``Plone``.

:func:`plone_upgrade` runs the command line as a subprocess, :func:`zconsole`
a script on the database; the script :data:`STATE` records profile versions
and reads back what the tests compare.
"""

from collective.upgradeapi.testing import slow
from contextlib import contextmanager
from zope_processes import BIN
from zope_processes import FILESTORAGE_CONF
from zope_processes import free_port
from zope_processes import instance_dir
from zope_processes import listening
from zope_processes import make_instance
from zope_processes import process_env
from zope_processes import Processes
from zope_processes import ROOT
from zope_processes import serve
from zope_processes import wait_until
from zope_processes import ZEO_ZOPE_CONF

import json
import os
import subprocess
import sys


BASE = "collective.upgradeapi.testing:base"
BROKEN = "collective.upgradeapi.testing:broken"
SITE = "cms"


ZEO_CONF = ZEO_ZOPE_CONF

#: A second, plain Plone site with the test profiles (run by ``zconsole``).
ADD_SITE = f"""\
from AccessControl.SecurityManagement import newSecurityManager
from Products.CMFPlone.factory import addPloneSite
from Testing.makerequest import makerequest
from zope.component.hooks import setSite

import transaction

app = makerequest(app)  # noqa: F821
admin = app.acl_users.getUserById("admin")
newSecurityManager(None, admin.__of__(app.acl_users))
site = addPloneSite(app, {SITE!r}, title="A plain Plone site")
setSite(site)
for profile_id in ({BASE!r}, {BROKEN!r}):
    site.portal_setup.runAllImportStepsFromProfile("profile-" + profile_id)
transaction.commit()
"""

#: Record profile versions (committed), then print what the tests compare.
STATE = """\
from collective.upgradeapi import api
from collective.upgradeapi.engine.profiles import version_str
from collective.upgradeapi.testing.steps import markers
from Testing.makerequest import makerequest
from zope.component.hooks import setSite

import json
import transaction

app = makerequest(app)  # noqa: F821
site = app[{site!r}]
setSite(site)
setup = site.portal_setup
for profile_id, version in {versions!r}.items():
    setup.setLastVersionForProfile(profile_id, version)
transaction.commit()
state = {{
    "versions": {{
        profile_id: version_str(setup.getLastVersionForProfile(profile_id))
        for profile_id in sorted(setup.listProfilesWithUpgrades())
    }},
    "markers": markers(site),
    "runs": len(api.runs(site)),
}}
print("STATE:" + json.dumps(state))
"""


def environment(**more):
    """The environment of the subprocesses: no ``PLONE_*`` variable, no gates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLONE_")}
    for name in (slow.VARIABLE, "COLLECTIVE_UPGRADEAPI_STALE_AFTER", "CI"):
        env.pop(name, None)
    # Plone 6.0's GenericSetup warns about pkg_resources on import; the tests
    # compare stderr.
    env["PYTHONWARNINGS"] = "ignore::UserWarning"
    env.update(more)
    return env


def plone_upgrade(*args, env=None, background=False):
    """Run ``python -m collective.upgradeapi.cli ARGS``; stdin closed."""
    command = [sys.executable, "-m", "collective.upgradeapi.cli", *args]
    options = {"env": env or environment(), "stdin": subprocess.DEVNULL, "text": True}
    if background:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options
        )
    return subprocess.run(command, capture_output=True, timeout=300, **options)


def zconsole(zope_conf, script, base, env=None):
    """Run ``script`` (its text) with ``zconsole run``; return the result."""
    path = base / "script.py"
    path.write_text(script)
    result = subprocess.run(
        [str(BIN / "zconsole"), "run", str(zope_conf), str(path)],
        cwd=ROOT,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    return result


class Instance:
    """A Zope instance with a FileStorage and the sites ``Plone`` and ``cms``."""

    def __init__(self, base):
        self.base = base
        etc = make_instance(
            base, FILESTORAGE_CONF.format(instance=instance_dir(base)), environment()
        )
        self.zope_conf = str(etc / "zope.conf")
        zconsole(self.zope_conf, ADD_SITE, base)

    def cli(self, *args, site=SITE, **env):
        """``plone-upgrade --zope-conf ZOPE_CONF [--site SITE] ARGS``."""
        door = ["--zope-conf", self.zope_conf] + (["--site", site] if site else [])
        return plone_upgrade(*door, *args, env=environment(**env))

    def state(self, versions=None, site=SITE):
        """Record ``versions`` first; return versions, markers, number of runs."""
        script = STATE.format(site=site, versions=versions or {})
        result = zconsole(self.zope_conf, script, self.base)
        line = next(x for x in result.stdout.splitlines() if x.startswith("STATE:"))
        return json.loads(line.removeprefix("STATE:"))


@contextmanager
def served_zeo(base):
    """A ZEO server, an instance on it, one ``runwsgi`` serving its ``Plone``.

    The slow test steps of ``Plone`` wait for their gates (in ``base/gates``).

    :returns: ``{"url", "zope_conf", "gates", "env", "base"}``; ``env`` is the
        environment of the Zope processes (with the gates).
    """
    gates = base / "gates"
    gates.mkdir()
    env = process_env(gates)
    processes = Processes()
    try:
        zeo_port = free_port()
        processes.start(
            [str(BIN / "runzeo"), "-a", f"127.0.0.1:{zeo_port}", "-f", "Data.fs"],
            base / "zeo.log",
            env,
            base,
        )
        wait_until(lambda: listening(zeo_port), 30, "the ZEO server")
        zope_conf = ZEO_CONF.format(instance=instance_dir(base), zeo_port=zeo_port)
        etc = make_instance(base, zope_conf, env)
        (url,) = serve(processes, etc, base, env, names=("a",))
        yield {
            "url": url,
            "zope_conf": str(etc / "zope.conf"),
            "gates": gates,
            "env": env,
            "base": base,
        }
    finally:
        processes.stop()
