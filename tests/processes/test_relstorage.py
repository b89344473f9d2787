"""Two Zope processes on RelStorage with a real PostgreSQL server.

The same set-up as ``test_real_processes.py``, with RelStorage instead of ZEO:
a throwaway PostgreSQL server (:mod:`postgres`), a Zope instance made with
``mkwsgiinstance`` whose database is a ``<relstorage>`` with the pure Python
driver pg8000 (history preserving, blobs in the database and cached on disk),
a Plone site created with ``scripts/create_site.py`` and two ``runwsgi``
processes serving it. The tests run in order and share the database: the
site, then one run held open at a gate, then what stays after it.
"""

from collective.upgradeapi.testing import slow
from concurrent.futures import ThreadPoolExecutor
from postgres import postgresql  # noqa: F401 (a fixture)
from zope_processes import BIN
from zope_processes import delete
from zope_processes import get
from zope_processes import instance_dir
from zope_processes import make_instance
from zope_processes import post
from zope_processes import process_env
from zope_processes import Processes
from zope_processes import ROOT
from zope_processes import run
from zope_processes import serve
from zope_processes import SLOW
from zope_processes import wait_until

import json
import pytest
import threading


pytestmark = pytest.mark.slow

ZOPE_CONF = """\
%define INSTANCE {instance}
instancehome $INSTANCE
%import relstorage
<zodb_db main>
  cache-size 30000
  <relstorage>
    keep-history true
    # Blobs are stored in PostgreSQL; this directory is only their cache,
    # which RelStorage lets the processes of one machine share.
    shared-blob-dir false
    blob-dir $INSTANCE/var/blobcache
    blob-cache-size 100mb
    <postgresql>
      driver pg8000
      dsn {dsn}
    </postgresql>
  </relstorage>
  mount-point /
</zodb_db>
<environment>
  CHAMELEON_CACHE $INSTANCE/var/cache
</environment>
"""

#: Run by ``zconsole`` in a process of its own: what the database holds.
READ_STATE = """\
from collective.upgradeapi import api
from collective.upgradeapi.testing.steps import markers
from zope.component.hooks import setSite

import json
import sys

site = app["Plone"]  # noqa: F821
setSite(site)
lock = api.lock_info(site)
state = {
    "version": list(site.portal_setup.getLastVersionForProfile("{slow}")),
    "markers": markers(site),
    "lock": lock,
    "state": api.status(site)["state"],
    "runs": [[run["id"], run["result"]] for run in api.runs(site)],
}
sys.stdout.write("STATE " + json.dumps(state) + "\\n")
"""

#: Shared by the tests, in order: the run that ``test_one_upgrade_at_a_time``
#: made, as the winner's answer and the history show it.
RUN = {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgresql):  # noqa: F811 (the imported fixture)
    """Two Zope processes serving the site ``Plone`` from PostgreSQL.

    :returns: ``{"urls": [url_a, url_b], "gates", "postgresql", "zope_conf",
        "read", "env"}``.
    """
    base = tmp_path_factory.mktemp("relstorage")
    gates = base / "gates"
    gates.mkdir()
    env = process_env(gates)
    processes = Processes()
    try:
        instance = instance_dir(base)
        zope_conf = ZOPE_CONF.format(instance=instance, dsn=postgresql.dsn)
        etc = make_instance(base, zope_conf, env)
        urls = serve(processes, etc, base, env)
        read = base / "read_state.py"
        read.write_text(READ_STATE.replace("{slow}", SLOW))
        yield {
            "urls": urls,
            "gates": gates,
            "postgresql": postgresql,
            "zope_conf": etc / "zope.conf",
            "read": read,
            "env": env,
        }
    finally:
        processes.stop()


def database_state(cluster):
    """What the database holds, read by a Zope process of its own (zconsole).

    Not what a serving process answers: a third RelStorage client, started
    after the fact, reads the committed state with the add-on's engine API.
    """
    result = run(
        [str(BIN / "zconsole"), "run", str(cluster["zope_conf"]), str(cluster["read"])],
        cluster["env"],
        ROOT,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("STATE ")]
    assert lines, f"No state printed:\n{result.stdout}\n{result.stderr}"
    return json.loads(lines[-1][len("STATE ") :])


def test_both_processes_serve_the_site_from_postgresql(cluster):
    for url in cluster["urls"]:
        response = get(url, "/@upgrade")

        assert response.status_code == 200, response.text
        data = response.json()
        assert {"needs_upgrade", "profiles", "upgrade_steps", "versions"} <= set(data)
        assert data["needs_upgrade"] is True
        assert SLOW in [profile["id"] for profile in data["profiles"]]
        status = get(url, "/@upgrade/status")
        assert status.status_code == 200, status.text
        assert status.json()["state"] == "idle"

    # The site is in PostgreSQL: RelStorage's history-preserving tables.
    server = cluster["postgresql"]
    [[objects]] = server.query("SELECT count(*) FROM current_object")
    [[transactions]] = server.query("SELECT count(*) FROM transaction")
    assert objects > 1000
    assert transactions >= 3  # root, the site, the slow profile
    assert database_state(cluster) == {
        "version": ["5000"],
        "markers": [],
        "lock": None,
        "state": "idle",
        "runs": [],
    }


def test_one_upgrade_at_a_time(cluster):
    url_a, url_b = cluster["urls"]
    barrier = threading.Barrier(2)

    def run_slow(url):
        barrier.wait()
        return post(url, "/@upgrade", {"profiles": [SLOW]})

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {pool.submit(run_slow, url): url for url in (url_a, url_b)}
        try:
            # The loser is refused at once, while the winner waits at gate 1.
            wait_until(lambda: any(f.done() for f in futures), 60, "a 409")
            loser = next(f for f in futures if f.done())
            refused = loser.result()
            assert refused.status_code == 409, refused.text
            body = refused.json()
            assert body["type"] == "UpgradeLocked"
            assert body["lock"]["user"] == "admin"
            assert body["lock"]["dry_run"] is False
            assert body["lock"]["stale"] is False
            winner = next(f for f in futures if f is not loser)
            assert not winner.done(), winner.result().text
            other_url = futures[loser]

            # Both processes see the running run, the same one.
            seen = []
            for url in (url_a, url_b):
                wait_until(
                    lambda url=url: get(url, "/@upgrade/status").json()["current_step"],
                    30,
                    f"the first step in the status from {url}",
                )
                status = get(url, "/@upgrade/status")
                assert status.status_code == 200, status.text
                status = status.json()
                assert status["state"] == "running"
                assert status["user"] == "admin"
                assert status["current_step"]["title"] == "Slow: first step"
                assert status["steps_total"] == 3
                assert status["stale"] is False
                seen.append(status["run_id"])
            assert seen[0] is not None
            assert seen[0] == seen[1]

            # Still refused while it runs, dry run or not, and the live lock
            # cannot be broken without force.
            again = post(other_url, "/@upgrade", {"profiles": [SLOW]})
            assert again.status_code == 409, again.text
            dry = post(other_url, "/@upgrade", {"dry_run": True})
            assert dry.status_code == 409, dry.text
            assert dry.json()["type"] == "UpgradeLocked"
            breaking = delete(other_url, "/@upgrade/lock")
            assert breaking.status_code == 409, breaking.text
        finally:
            for name in ("1", "2", "3"):
                slow.open_gate(cluster["gates"], name)
        answer = winner.result()

    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["committed"] is True
    assert data["upgraded"] is True
    assert [s["status"] for s in data["steps"]] == ["done"] * 3
    RUN["id"] = seen[0]


def test_history_and_status_seen_from_both_processes(cluster):
    assert RUN, "test_one_upgrade_at_a_time did not run"
    items = []
    for url in cluster["urls"]:
        response = get(url, "/@upgrade/history")
        assert response.status_code == 200, response.text
        runs = response.json()
        assert runs["items_total"] == 1
        item = runs["items"][0]
        assert item["id"] == RUN["id"]
        assert item["result"] == "success"
        assert item["user"] == "admin"
        assert item["profiles"][0]["versions"]["after"] == "5003"
        items.append({k: v for k, v in item.items() if k != "@id"})

        detail = get(url, f"/@upgrade/history/{RUN['id']}")
        assert detail.status_code == 200, detail.text
        assert detail.json()["result"] == "success"

        status = get(url, "/@upgrade/status").json()
        assert status["state"] == "committed"
        assert status["last_run"]["id"] == RUN["id"]
        pending = get(url, "/@upgrade").json()["profiles"]
        assert SLOW not in [profile["id"] for profile in pending]
    # The same record, whichever process answers (its URL aside).
    assert items[0] == items[1]


def test_database_after_the_run(cluster):
    assert RUN, "test_one_upgrade_at_a_time did not run"
    state = database_state(cluster)

    # Each step ran once and was committed once; the lock is gone.
    assert state == {
        "version": ["5003"],
        "markers": ["slow-1", "slow-2", "slow-3"],
        "lock": None,
        "state": "committed",
        "runs": [[RUN["id"], "success"]],
    }
    # One PostgreSQL transaction holds the run, with its note and its user.
    notes = cluster["postgresql"].query(
        "SELECT convert_from(username, 'UTF8'), convert_from(description, 'UTF8')"
        " FROM transaction WHERE position('collective.upgradeapi' IN"
        " convert_from(description, 'UTF8')) > 0"
    )
    assert len(notes) == 1, notes
    [[user, note]] = notes
    assert "admin" in user
    assert str(RUN["id"]) in note


def test_the_lock_is_released_for_either_process(cluster):
    assert RUN, "test_one_upgrade_at_a_time did not run"
    dry_runs = []
    for url in cluster["urls"]:
        # A dry run of the core upgrade takes the lock: it is free.
        response = post(url, "/@upgrade", {"dry_run": True})

        assert response.status_code == 200, response.text
        data = response.json()
        assert data["dry_run"] is True
        assert data["committed"] is False
        assert all(step["status"] == "done" for step in data["steps"])
        dry_runs.append(data["run_id"])
        assert get(url, "/@upgrade/status").json()["state"] == "rolled_back"
        # There is no lock left to break.
        assert delete(url, "/@upgrade/lock").status_code == 404

    state = database_state(cluster)
    assert state["lock"] is None
    assert state["state"] == "rolled_back"
    # The dry runs wrote nothing but their history entries.
    assert state["version"] == ["5003"]
    assert state["markers"] == ["slow-1", "slow-2", "slow-3"]
    assert state["runs"] == [
        [dry_runs[1], "success"],
        [dry_runs[0], "success"],
        [RUN["id"], "success"],
    ]
