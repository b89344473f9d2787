"""Real Zope processes for tests, started the ordinary way.

Shared by ``test_real_processes.py`` (ZEO) and ``test_relstorage.py``
(RelStorage on PostgreSQL): a Zope instance made with ``mkwsgiinstance``
whose ``zope.conf`` the test writes, the test-only profiles loaded next to
the autoincluded add-on, the Plone site created with
``scripts/create_site.py`` (through ``zconsole``), the profile
``collective.upgradeapi.testing:slow`` installed and rewound so that a run can
be held open at a gate, and ``runwsgi`` processes serving it.
"""

from collective.upgradeapi.testing import slow
from pathlib import Path

import os
import requests
import socket
import subprocess
import sys
import time


BIN = Path(sys.executable).parent
ROOT = Path(__file__).parent.parent
SLOW = "collective.upgradeapi.testing:slow"
AUTH = ("admin", "admin")
HEADERS = {"Accept": "application/json"}

#: A zope.conf whose database is a ZEO client (format: instance, zeo_port).
#: A zope.conf of a Zope instance on a FileStorage of its own.
FILESTORAGE_CONF = """\
%define INSTANCE {instance}
instancehome $INSTANCE
<zodb_db main>
  <filestorage>
    path $INSTANCE/var/Data.fs
  </filestorage>
  mount-point /
</zodb_db>
<environment>
  CHAMELEON_CACHE $INSTANCE/var/cache
</environment>
"""


ZEO_ZOPE_CONF = """\
%define INSTANCE {instance}
instancehome $INSTANCE
<zodb_db main>
  <zeoclient>
    server 127.0.0.1:{zeo_port}
    storage 1
    name zeostorage
    var $INSTANCE/var
    cache-size 20MB
    wait true
  </zeoclient>
  mount-point /
</zodb_db>
<environment>
  CHAMELEON_CACHE $INSTANCE/var/cache
</environment>
"""

SITE_ZCML_TESTING = """\
  <!-- Test-only profiles with upgrade steps (the add-on is autoincluded). -->
  <include package="collective.upgradeapi.testing" />

</configure>
"""

PREPARE = """\
from AccessControl.SecurityManagement import newSecurityManager
from Testing.makerequest import makerequest
from zope.component.hooks import setSite

import transaction

app = makerequest(app)  # noqa: F821
admin = app.acl_users.getUserById("admin")
newSecurityManager(None, admin.__of__(app.acl_users))
site = app["Plone"]
setSite(site)
site.portal_setup.runAllImportStepsFromProfile("profile-{profile}")
site.portal_setup.setLastVersionForProfile("{profile}", "{version}")
transaction.commit()
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.2)
    raise AssertionError(f"Timed out waiting for {what}")


def listening(port):
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def run(args, env, cwd):
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def tail(path, lines=40):
    """The last ``lines`` lines of a log file, for failure messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


class Processes:
    """Started processes, stopped (by their own handle) at the end."""

    def __init__(self):
        self.started = []

    def start(self, args, log, env, cwd):
        handle = log.open("w")
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
        self.started.append((process, handle))
        return process

    def stop(self):
        for process, handle in reversed(self.started):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            handle.close()


def process_env(gates):
    """The environment of the Zope processes: the gates of the slow steps.

    The lock's staleness and the CI flag of the test run are not passed on.
    """
    env = {**os.environ, slow.VARIABLE: str(gates)}
    for name in ("COLLECTIVE_UPGRADEAPI_STALE_AFTER", "CI"):
        env.pop(name, None)
    return env


def instance_dir(base):
    """Where :func:`make_instance` makes the instance."""
    return base / "instance"


def make_instance(base, zope_conf, env):
    """A Zope instance in :func:`instance_dir` with the site ``Plone`` in it.

    :param zope_conf: the text of its ``zope.conf``.
    :returns: the instance's ``etc`` directory.
    """
    instance = instance_dir(base)
    run(
        [str(BIN / "mkwsgiinstance"), "-d", str(instance), "-u", "admin:admin"],
        env,
        base,
    )
    etc = instance / "etc"
    (etc / "zope.conf").write_text(zope_conf)
    ini = (etc / "zope.ini").read_text()
    ini = ini.replace("port = 8080", "port = %(http_port)s")
    (etc / "zope.ini").write_text(ini)
    site_zcml = (etc / "site.zcml").read_text()
    (etc / "site.zcml").write_text(site_zcml.replace("</configure>", SITE_ZCML_TESTING))
    zconsole = [str(BIN / "zconsole"), "run", str(etc / "zope.conf")]
    run([*zconsole, str(ROOT / "scripts" / "create_site.py")], env, ROOT)
    install_profile(etc, base, env, SLOW, "5000")
    return etc


def install_profile(etc, base, env, profile, version):
    """Install ``profile`` in the site ``Plone`` and record it at ``version``."""
    script = base / "install_profile.py"
    script.write_text(PREPARE.format(profile=profile, version=version))
    run([str(BIN / "zconsole"), "run", str(etc / "zope.conf"), str(script)], env, ROOT)


def serve(processes, etc, base, env, names=("a", "b"), timeout=120):
    """Start one ``runwsgi`` per name and wait until each serves the site.

    :returns: the site's URL in each process, in the order of ``names``.
    """
    started = []
    for name in names:
        port = free_port()
        log = base / f"zope-{name}.log"
        process = processes.start(
            [str(BIN / "runwsgi"), str(etc / "zope.ini"), f"http_port={port}"],
            log,
            env,
            base,
        )
        started.append((process, log, f"http://127.0.0.1:{port}/Plone"))
    for process, log, url in started:

        def up(process=process, log=log, url=url):
            if process.poll() is not None:
                raise AssertionError(
                    f"Zope for {url} exited with {process.returncode}:\n{tail(log)}"
                )
            return requests.get(url, timeout=5).status_code < 500

        wait_until(up, timeout, url)
    return [url for _, _, url in started]


def get(url, path):
    return requests.get(url + path, auth=AUTH, headers=HEADERS, timeout=30)


def post(url, path, body):
    return requests.post(url + path, json=body, auth=AUTH, headers=HEADERS, timeout=120)


def delete(url, path):
    return requests.delete(url + path, auth=AUTH, headers=HEADERS, timeout=30)
