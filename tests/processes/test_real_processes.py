"""Real Zope processes, started the ordinary way, sharing one ZEO server.

No test layer here: a ZEO server (``runzeo``) on loopback, a Zope instance
made with ``mkwsgiinstance`` whose database is a ``<zeoclient>``, a Plone
site created with ``scripts/create_site.py``, and two ``runwsgi`` processes
serving it. The add-on is loaded by plone.autoinclude, as in production; the
instance also loads the test-only profiles (``collective.upgradeapi.testing``)
so that a run can be held open at a gate. ``test_relstorage.py`` does the
same on RelStorage; the set-up both use is in ``zope_processes.py``.
"""

from collective.upgradeapi.testing import slow
from concurrent.futures import ThreadPoolExecutor
from zope_processes import BIN
from zope_processes import free_port
from zope_processes import get
from zope_processes import instance_dir
from zope_processes import listening
from zope_processes import make_instance
from zope_processes import post
from zope_processes import process_env
from zope_processes import Processes
from zope_processes import serve
from zope_processes import SLOW
from zope_processes import wait_until
from zope_processes import ZEO_ZOPE_CONF

import pytest
import threading


pytestmark = pytest.mark.slow

ZOPE_CONF = ZEO_ZOPE_CONF


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A ZEO server and two Zope processes serving the site ``Plone``.

    :returns: ``{"urls": [url_a, url_b], "gates": directory}``.
    """
    base = tmp_path_factory.mktemp("zeo")
    gates = base / "gates"
    gates.mkdir()
    env = process_env(gates)
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
        zope_conf = ZOPE_CONF.format(instance=instance_dir(base), zeo_port=zeo_port)
        etc = make_instance(base, zope_conf, env)
        urls = serve(processes, etc, base, env)
        yield {"urls": urls, "gates": gates}
    finally:
        processes.stop()


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

    def run_slow(url):
        barrier.wait()
        return post(url, "/@upgrade", {"profiles": [SLOW]})

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run_slow, url) for url in (url_a, url_b)]
        # The loser is refused at once, while the winner waits at its gate.
        wait_until(lambda: any(f.done() for f in futures), 60, "a 409")
        loser = next(f for f in futures if f.done()).result()
        assert loser.status_code == 409, loser.text
        assert loser.json()["type"] == "UpgradeLocked"
        # Both processes see the run, its lock and its progress (once the
        # winner got from "preparing" to its first step).
        for url in (url_a, url_b):
            wait_until(
                lambda url=url: (
                    get(url, "/@upgrade/status").json()["state"] == "running"
                ),
                30,
                "the run's first step",
            )
            status = get(url, "/@upgrade/status").json()
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
        assert get(url, "/@upgrade/status").json()["state"] == "committed"
        pending = get(url, "/@upgrade").json()["profiles"]
        assert SLOW not in [profile["id"] for profile in pending]
