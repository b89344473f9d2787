"""Crashes and restarts: a dead run must not look alive.

Real Zope processes (``runwsgi``) serving a site on a ZEO server, set up as
in ``test_real_processes.py``, are killed (``SIGKILL``) or stopped
(``SIGTERM``, which ends them at once too) while a run waits at a test gate,
and restarted. The test reads
and writes the database directly through a ZEO client of its own: to see
what a killed process left behind, to check that the killed run committed
nothing, and to plant the lock of a holder on another host.

The processes consider a lock stale after :data:`STALE_AFTER` seconds
without a heartbeat.
"""

from collective.upgradeapi import config
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing import steps
from collective.upgradeapi.tracking import store
from collective.upgradeapi.tracking.state import RunState
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zope_processes import BIN
from zope_processes import delete
from zope_processes import free_port
from zope_processes import get
from zope_processes import instance_dir
from zope_processes import listening
from zope_processes import make_instance
from zope_processes import post
from zope_processes import process_env
from zope_processes import Processes
from zope_processes import SLOW
from zope_processes import tail
from zope_processes import wait_until
from zope_processes import ZEO_ZOPE_CONF

import pytest
import requests
import signal
import subprocess
import sys
import time
import transaction
import ZEO


pytestmark = pytest.mark.slow

STALE_AFTER = 5
SITE = "Plone"

ZOPE_CONF = ZEO_ZOPE_CONF


class Zope:
    """The one ``runwsgi`` process serving the site; killed and restarted.

    Each start gets a fresh directory of gates, so its run waits again.
    """

    def __init__(self, base, etc):
        self.base = base
        self.etc = etc
        self.starts = 0
        self.process = None
        self.url = None
        self.gates = None
        self.log = None
        self.handle = None

    def start(self):
        self.starts += 1
        self.gates = self.base / f"gates-{self.starts}"
        self.gates.mkdir()
        env = process_env(self.gates)
        env["COLLECTIVE_UPGRADEAPI_STALE_AFTER"] = str(STALE_AFTER)
        port = free_port()
        self.log = self.base / f"zope-{self.starts}.log"
        self.handle = self.log.open("w")
        self.process = subprocess.Popen(
            [str(BIN / "runwsgi"), str(self.etc / "zope.ini"), f"http_port={port}"],
            cwd=self.base,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}/{SITE}"

        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"Zope exited:\n{tail(self.log)}")
            return requests.get(self.url, timeout=5).status_code < 500

        wait_until(up, 120, self.url)

    def signal(self, signum):
        """Send ``signum`` and wait for the process to end; its return code."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.handle.close()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.handle is not None:
            self.handle.close()

    def open_gates(self, *names):
        for name in names:
            slow.open_gate(self.gates, name)

    def close_gates(self):
        """The next run waits at its gates again."""
        for gate in self.gates.iterdir():
            gate.unlink()


class Database:
    """The site's database, read and written from the test through ZEO."""

    def __init__(self, port):
        self.db = ZEO.DB(("127.0.0.1", port))

    def close(self):
        self.db.close()

    def use(self, change, commit=False):
        """``change(site)`` on the newest state; committed if ``commit``."""
        manager = transaction.TransactionManager()
        connection = self.db.open(transaction_manager=manager)
        try:
            manager.begin()
            site = connection.root()["Application"]._getOb(SITE)
            result = change(site)
            if commit:
                manager.commit()
            return result
        finally:
            manager.abort()
            connection.close()

    def records(self, look):
        """``look(records)`` on the site's upgrade records."""
        return self.use(lambda site: look(RunState(_state(site))))

    def snapshot(self):
        """What a killed run must not have changed: versions and markers."""

        def read(site):
            setup = site.portal_setup
            return {
                "version": setup.getLastVersionForProfile(SLOW),
                "markers": list(site.__annotations__.get(steps.MARKERS, ())),
            }

        return self.use(read)


def _state(site):
    return site.__annotations__[store.KEY]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A ZEO server, the site, one Zope process serving it, a ZEO client."""
    base = tmp_path_factory.mktemp("crash")
    processes = Processes()
    zope = database = None
    try:
        zeo_port = free_port()
        processes.start(
            [str(BIN / "runzeo"), "-a", f"127.0.0.1:{zeo_port}", "-f", "Data.fs"],
            base / "zeo.log",
            process_env(base),
            base,
        )
        wait_until(lambda: listening(zeo_port), 30, "the ZEO server")
        zope_conf = ZOPE_CONF.format(instance=instance_dir(base), zeo_port=zeo_port)
        etc = make_instance(base, zope_conf, process_env(base))
        zope = Zope(base, etc)
        zope.start()
        database = Database(zeo_port)
        yield {"zope": zope, "db": database}
    finally:
        if database is not None:
            database.close()
        if zope is not None:
            zope.stop()
        processes.stop()


@pytest.fixture
def zope(cluster):
    zope = cluster["zope"]
    if zope.process.poll() is not None:  # a test failed before its restart
        zope.start()
    return zope


@pytest.fixture
def db(cluster):
    return cluster["db"]


def status(zope):
    return get(zope.url, "/@upgrade/status").json()


def wait_for_step(zope, title):
    def there():
        current = status(zope).get("current_step") or {}
        return current.get("title") == title

    wait_until(there, 60, f"the run at {title!r}")


@pytest.fixture
def running(zope):
    """Return ``start()``: POST a real run of the slow profile, in a thread.

    The request fails when its process is killed; the future says so.
    """
    pool = ThreadPoolExecutor(max_workers=1)

    def start(**options):
        def run():
            try:
                return post(zope.url, "/@upgrade", {"profiles": [SLOW], **options})
            except requests.RequestException as exc:
                return exc

        return pool.submit(run)

    yield start
    pool.shutdown(wait=True)


def dry_run_works(zope):
    """After the crash, a run takes the lock again (a dry run: no change)."""
    zope.open_gates("1", "2", "3")
    response = post(zope.url, "/@upgrade", {"profiles": [SLOW], "dry_run": True})
    assert response.status_code == 200, response.text
    assert get(zope.url, "/@upgrade/lock").json()["lock"] is None
    zope.close_gates()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_or_stopped_mid_run_then_restart(zope, db, running, signum):
    """A Zope process serving requests keeps its own answer to SIGTERM (it
    ends at once, as on SIGKILL): this add-on sets no signal handler there."""
    before = db.snapshot()
    future = running()
    zope.open_gates("1")
    wait_for_step(zope, "Slow: second step")
    pid = zope.process.pid

    killed = time.time()
    assert zope.signal(signum) == -signum
    assert isinstance(future.result(timeout=30), requests.RequestException)

    # What the killed process left: its lock, its run recorded as running.
    left = db.records(lambda records: records.get("lock"))
    assert left["holder"]["pid"] == pid
    assert db.snapshot() == before  # the first step was not committed

    zope.start()  # the restarted Zope clears its dead predecessor's lock
    assert "Removed the upgrade lock of site Plone" in zope.log.read_text()
    assert get(zope.url, "/@upgrade/lock").json()["lock"] is None
    now = status(zope)
    assert (now["state"], now["error_info"]["type"]) == ("abandoned", "ProcessGone")
    run = get(zope.url, f"/@upgrade/history/{now['run_id']}").json()
    assert run["result"] == "abandoned"
    assert run["error"]["step"]["title"] == "Slow: second step"
    assert [(s["title"], s["status"]) for s in run["steps"]] == [
        ("Slow: first step", "done")
    ]
    # It ends when it was last seen alive, before the kill.
    finished = db.records(lambda records: records.runs[run["id"]]["finished"])
    assert killed - STALE_AFTER <= finished <= killed
    assert run["error"]["heartbeat"] == run["finished"]
    assert db.snapshot() == before
    dry_run_works(zope)
    assert db.snapshot() == before


def test_sigkill_in_step_mode_records_what_was_committed(zope, db, running):
    """Step 1 of 3 committed on its own, then the process died in step 2: the
    history says the run committed, and where its profile is now."""
    future = running(commit="step")
    zope.open_gates("1")
    wait_for_step(zope, "Slow: second step")

    assert zope.signal(signal.SIGKILL) == -signal.SIGKILL
    assert isinstance(future.result(timeout=30), requests.RequestException)
    zope.start()

    now = status(zope)
    run = get(zope.url, f"/@upgrade/history/{now['run_id']}").json()
    assert (run["result"], run["committed"]) == ("abandoned", True)
    assert run["profiles"] == [
        {"id": SLOW, "versions": {"before": "5000", "after": "5001", "fs": "5003"}}
    ]
    assert db.snapshot()["version"] == ("5001",)
    zope.open_gates("2", "3")
    response = post(zope.url, "/@upgrade", {"profiles": [SLOW], "dry_run": True})
    assert response.status_code == 200, response.text
    assert [s["title"] for s in response.json()["steps"]] == [
        "Slow: second step",
        "Slow: third step",
    ]
    zope.close_gates()
    db.use(
        lambda site: site.portal_setup.setLastVersionForProfile(SLOW, "5000"),
        commit=True,
    )


def plant(db, zope_url, holder, user="ghost", ahead=0):
    """Commit a lock whose holder is ``holder``, last seen alive ``ahead``
    seconds from now; return its run id and that moment."""
    seen = time.time() + ahead

    def change(site):
        records = RunState(_state(site))
        run_id = records.start(user, False, {"profiles": [SLOW]}, 3)
        step = {"id": "x", "profile": SLOW, "title": "Slow: second step"}
        records.set(
            "lock",
            {
                "token": "planted",
                "user": user,
                "since": seen,
                "dry_run": False,
                "holder": holder,
            },
        )
        records.set(
            "progress",
            {
                "token": "planted",
                "run_id": run_id,
                "started": seen,
                "phase": "running",
                "current_step": step,
                "steps_started": 2,
                "steps_done": 1,
                "steps_total": 3,
                "updated": seen,
            },
        )
        return run_id

    planted = db.use(change, commit=True), seen
    # The Zope process is another ZEO client: it sees the commit once the
    # server's invalidation reached it.
    wait_until(
        lambda: get(zope_url, "/@upgrade/lock").json()["lock"] is not None,
        60,
        "the planted lock to be seen",
    )
    return planted


def test_other_host_is_stale_after_the_heartbeat_timeout(zope, db):
    before = db.snapshot()
    elsewhere = {"host": "zope-2.elsewhere.example.org", "pid": 7, "started": 1.0}
    # Seen alive 20 seconds ahead: the checks of a live lock below come before
    # it goes stale, however loaded the machine.
    run_id, seen = plant(db, zope.url, {**elsewhere, "boot": "b"}, ahead=20)

    lock = get(zope.url, "/@upgrade/lock").json()["lock"]
    assert lock["holder"]["host"] == elsewhere["host"]
    assert lock["state"] == "alive"
    refused = post(zope.url, "/@upgrade", {"profiles": [SLOW]})
    assert refused.status_code == 409
    assert "DELETE @upgrade/run" in refused.json()["message"]

    wait_until(
        lambda: get(zope.url, "/@upgrade/lock").json()["lock"]["stale"],
        STALE_AFTER + 40,
        "the lock to go stale",
    )
    lock = get(zope.url, "/@upgrade/lock").json()["lock"]
    assert lock["stale_reason"] == "no_heartbeat"
    refused = post(zope.url, "/@upgrade", {"profiles": [SLOW]})
    assert refused.status_code == 409
    assert "DELETE @upgrade/lock" in refused.json()["message"]

    assert delete(zope.url, "/@upgrade/lock").status_code == 200
    run = get(zope.url, f"/@upgrade/history/{run_id}").json()
    assert (run["result"], run["error"]["type"]) == ("abandoned", "LockBroken")
    assert run["error"]["step"]["title"] == "Slow: second step"
    finished = db.records(lambda records: records.runs[run_id]["finished"])
    assert finished == pytest.approx(seen, abs=0.01)
    dry_run_works(zope)
    assert db.snapshot() == before


def test_a_dead_process_of_this_host_is_taken_over(zope, db):
    before = db.snapshot()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    # The test and the Zope process run on the same host.
    holder = {"host": config.host_name(), "pid": gone.pid, "started": 1.0}
    run_id, _seen = plant(db, zope.url, {**holder, "boot": "b"})

    lock = get(zope.url, "/@upgrade/lock").json()["lock"]
    assert (lock["state"], lock["stale_reason"]) == ("stale", "process_gone")
    dry_run_works(zope)
    run = get(zope.url, f"/@upgrade/history/{run_id}").json()
    assert (run["result"], run["error"]["type"]) == ("abandoned", "ProcessGone")
    assert db.snapshot() == before


def test_logs_have_no_tracebacks(cluster):
    for log in sorted(Path(cluster["zope"].base).glob("zope-*.log")):
        assert "Traceback" not in log.read_text(), tail(log)
