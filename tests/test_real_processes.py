"""Real Zope processes, started the ordinary way, sharing one ZEO server.

No test layer here: a ZEO server (``runzeo``) on loopback, a Zope instance
made with ``mkwsgiinstance`` whose database is a ``<zeoclient>``, a Plone
site created with ``scripts/create_site.py``, and two ``runwsgi`` processes
serving it. The add-on is loaded by plone.autoinclude, as in production; the
instance also loads the test-only profiles (``collective.upgradeapi.testing``)
so that a run can be held open at a gate.
"""

from collective.upgradeapi.testing import slow
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import os
import pytest
import requests
import socket
import subprocess
import sys
import threading
import time


pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ROOT = Path(__file__).parent.parent
SLOW = "collective.upgradeapi.testing:slow"
AUTH = ("admin", "admin")
HEADERS = {"Accept": "application/json"}

ZOPE_CONF = """\
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
site.portal_setup.runAllImportStepsFromProfile("profile-{slow}")
site.portal_setup.setLastVersionForProfile("{slow}", "5000")
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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A ZEO server and two Zope processes serving the site ``Plone``.

    :returns: ``{"urls": [url_a, url_b], "gates": directory}``.
    """
    base = tmp_path_factory.mktemp("zeo")
    gates = base / "gates"
    gates.mkdir()
    env = {**os.environ, slow.VARIABLE: str(gates)}
    for name in ("COLLECTIVE_UPGRADEAPI_STALE_AFTER", "CI"):
        env.pop(name, None)
    processes = Processes()
    try:
        zeo_port = free_port()
        processes.start(
            [
                str(BIN / "runzeo"),
                "-a",
                f"127.0.0.1:{zeo_port}",
                "-f",
                str(base / "Data.fs"),
            ],
            base / "zeo.log",
            env,
            base,
        )
        wait_until(lambda: listening(zeo_port), 30, "the ZEO server")

        instance = base / "instance"
        run(
            [str(BIN / "mkwsgiinstance"), "-d", str(instance), "-u", "admin:admin"],
            env,
            base,
        )
        etc = instance / "etc"
        (etc / "zope.conf").write_text(
            ZOPE_CONF.format(instance=instance, zeo_port=zeo_port)
        )
        ini = (etc / "zope.ini").read_text()
        ini = ini.replace("port = 8080", "port = %(http_port)s")
        (etc / "zope.ini").write_text(ini)
        site_zcml = (etc / "site.zcml").read_text()
        (etc / "site.zcml").write_text(
            site_zcml.replace("</configure>", SITE_ZCML_TESTING)
        )
        zconsole = [str(BIN / "zconsole"), "run", str(etc / "zope.conf")]
        run([*zconsole, str(ROOT / "scripts" / "create_site.py")], env, ROOT)
        prepare = base / "prepare.py"
        prepare.write_text(PREPARE.format(slow=SLOW))
        run([*zconsole, str(prepare)], env, ROOT)

        urls = []
        for name in ("a", "b"):
            port = free_port()
            processes.start(
                [str(BIN / "runwsgi"), str(etc / "zope.ini"), f"http_port={port}"],
                base / f"zope-{name}.log",
                env,
                base,
            )
            urls.append(f"http://127.0.0.1:{port}/Plone")
        for url in urls:
            wait_until(
                lambda url=url: requests.get(url, timeout=5).status_code < 500,
                120,
                url,
            )
        yield {"urls": urls, "gates": gates}
    finally:
        processes.stop()


def get(url, path):
    return requests.get(url + path, auth=AUTH, headers=HEADERS, timeout=30)


def test_plain_zope_answers_with_this_addons_upgrade(cluster):
    for url in cluster["urls"]:
        response = get(url, "/@upgrade")

        assert response.status_code == 200, response.text
        data = response.json()
        assert {"needs_upgrade", "profiles", "upgrade_steps", "versions"} <= set(data)
        assert data["needs_upgrade"] is True
        assert SLOW in [profile["id"] for profile in data["profiles"]]


def test_two_processes_post_at_once_one_runs(cluster):
    url_a, url_b = cluster["urls"]
    barrier = threading.Barrier(2)

    def post(url):
        barrier.wait()
        return requests.post(
            url + "/@upgrade",
            json={"profiles": [SLOW]},
            auth=AUTH,
            headers=HEADERS,
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(post, url) for url in (url_a, url_b)]
        # The loser is refused at once, while the winner waits at its gate.
        wait_until(lambda: any(f.done() for f in futures), 60, "a 409")
        loser = next(f for f in futures if f.done()).result()
        assert loser.status_code == 409, loser.text
        assert loser.json()["type"] == "UpgradeLocked"
        # Both processes see the run, its lock and its progress.
        for url in (url_a, url_b):
            status = get(url, "/@upgrade/status").json()
            assert status["state"] == "running"
            assert status["current_step"]["title"] == "Slow: first step"
        for name in ("1", "2", "3"):
            slow.open_gate(cluster["gates"], name)
        winner = next(f for f in futures if f.result() is not loser).result()
    assert winner.status_code == 200, winner.text
    assert [s["status"] for s in winner.json()["steps"]] == ["done"] * 3

    for url in (url_a, url_b):
        runs = get(url, "/@upgrade/history").json()
        assert runs["items_total"] == 1
        assert runs["items"][0]["result"] == "success"
        assert runs["items"][0]["profiles"][0]["versions"]["after"] == "5003"
        assert get(url, "/@upgrade/status").json()["state"] == "idle"
        pending = get(url, "/@upgrade").json()["profiles"]
        assert SLOW not in [profile["id"] for profile in pending]
