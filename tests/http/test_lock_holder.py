"""A dead run must not look alive: the lock's holder, its liveness, and what
a starting or stopping Zope process does with the locks of its runs.

In-process (the functional layer). ``test_crash.py`` kills and restarts real
Zope processes.
"""

from collective.upgradeapi import config
from collective.upgradeapi import lifecycle
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.status import at_step
from collective.upgradeapi.testing.status import wait_for_status
from collective.upgradeapi.tracking import holder
from collective.upgradeapi.tracking.publishing import side_connection
from collective.upgradeapi.tracking.store import iso
from collective.upgradeapi.tracking.store import now
from concurrent.futures import ThreadPoolExecutor

import os
import pytest
import signal
import subprocess
import sys
import time


SLOW = "collective.upgradeapi.testing:slow"
STEP = {"id": "s2", "profile": SLOW, "title": "Slow: second step"}


pytestmark = pytest.mark.usefixtures("stand_ins")


def predecessor():
    """A holder on this host: a process that had this process's id, before."""
    return {**holder.identity(), "boot": "a-predecessor", "started": now() - 3600}


def elsewhere():
    return {
        "host": "zope-2.elsewhere.example.org",
        "pid": 1,
        "started": now() - 3600,
        "boot": "another",
    }


@pytest.fixture
def plant(site):
    """Return ``plant(holder, age)``: commit a lock as a run left it.

    The run is recorded as running, in its second step, its first step done;
    its last sign of life is ``age`` seconds old.
    """

    def plant(recorded, age=5.0, user="ghost"):
        seen = now() - age

        def change(records):
            run_id = records.start(user, False, {"profiles": [SLOW]}, 3)
            records.runs[run_id]["started"] = seen - 10
            records.runs[run_id]["steps"] = [
                {
                    "id": "s1",
                    "profile": SLOW,
                    "title": "Slow: first step",
                    "source": "5000",
                    "dest": "5001",
                    "status": "done",
                    "duration": 1.0,
                    "log": [],
                }
            ]
            lock = {"token": "dead", "user": user, "since": seen - 10}
            records.set("lock", {**lock, "dry_run": False, "holder": recorded})
            records.set(
                "progress",
                {
                    "token": "dead",
                    "run_id": run_id,
                    "started": seen - 10,
                    "phase": "running",
                    "current_step": STEP,
                    "steps_started": 2,
                    "steps_done": 1,
                    "steps_total": 3,
                    "updated": seen,
                },
            )
            return run_id

        with side_connection(site) as side:
            return side.transact(change)

    return plant


# -- who holds it, and whether it lives --------------------------------------


def test_this_process_and_its_runs():
    me = holder.identity()
    assert (me["host"], me["pid"]) == (config.host_name(), os.getpid())
    assert holder.identity()["boot"] == me["boot"]
    assert abs(me["started"] - holder.process_started(os.getpid())) < 1

    holder.register("t", object())
    try:
        assert holder.judge(me, "t") == holder.ALIVE
    finally:
        holder.unregister("t")
    assert holder.judge(me, "t") == holder.DEAD  # its run is gone


def test_processes_of_this_host():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = holder.process_started(sleeper.pid)
        alive = {"host": config.host_name(), "pid": sleeper.pid, "started": started}
        assert holder.judge(alive) == holder.ALIVE
        # The same id, given to another process since.
        assert holder.judge({**alive, "started": started - 60}) == holder.DEAD
    finally:
        sleeper.kill()
        sleeper.wait()
    assert holder.judge(alive) == holder.DEAD  # no such process


def test_a_zombie_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while holder.running(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # exited, not reaped yet: a zombie
    try:
        assert not holder.running(child.pid)
    finally:
        child.wait()


def test_other_hosts_and_old_locks_are_judged_by_their_heartbeat(monkeypatch):
    assert holder.judge(elsewhere()) == holder.UNKNOWN
    assert holder.judge(None) == holder.UNKNOWN
    recorded = predecessor()
    assert holder.judge(recorded) == holder.DEAD
    # This host under another name: its old processes are another host's.
    monkeypatch.setenv("COLLECTIVE_UPGRADEAPI_HOST", "zope-1")
    assert config.host_name() == "zope-1"
    assert holder.judge(recorded) == holder.UNKNOWN


# -- the lock as the services show it ----------------------------------------


def test_live_lock_shows_its_holder(api, background, gates, rewind, example):
    rewind({SLOW: "5000"})
    future = background({"profiles": [SLOW]})
    wait_for_status(api, at_step("Slow: first step"))

    response = api.get("/@upgrade/lock")
    example("upgrade_lock_alive", response)
    lock = response.json()["lock"]
    me = holder.identity()
    assert lock["holder"]["host"] == me["host"]
    assert lock["holder"]["pid"] == me["pid"]
    assert lock["holder"]["started"] == iso(me["started"])
    assert "boot" not in lock["holder"]
    assert (lock["state"], lock["stale"], lock["stale_reason"]) == (
        "alive",
        False,
        None,
    )
    assert lock["stale_after"] == 60
    assert "DELETE @upgrade/run" in lock["how_to_break"]

    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)
    assert future.result(timeout=60).status_code == 200


def test_a_dead_holder_of_this_host_is_stale_at_once(
    site,
    api,
    background,
    gates,
    rewind,
    snapshot,
    example,
):
    rewind({SLOW: "5000"})
    before = snapshot()
    first = background({"profiles": [SLOW]})
    slow.open_gate(gates, "1")
    wait_for_status(api, at_step("Slow: second step"))

    # As a restarted process sees the lock of the process it replaced (the
    # same host, the same process id, another boot id): its holder is gone.
    def restarted(records):
        lock = records.get("lock")
        records.set("lock", {**lock, "holder": predecessor()})

    with side_connection(site) as side:
        side.transact(restarted)

    response = api.get("/@upgrade/lock")
    example("upgrade_lock_process_gone", response)
    lock = response.json()["lock"]
    assert (lock["state"], lock["stale_reason"]) == ("stale", "process_gone")
    assert "DELETE @upgrade/lock" in lock["how_to_break"]
    status = api.get("/@upgrade/status").json()
    assert (status["state"], status["stale"]) == ("running", True)

    # The next run takes the lock over; the dead run is recorded abandoned.
    second = background({"profiles": [SLOW], "dry_run": True})
    wait_for_status(api, lambda data: data["run_id"] == 2)
    response = api.get("/@upgrade/history/1")
    example("upgrade_history_abandoned", response)
    run = response.json()
    assert run["result"] == "abandoned"
    assert run["error"]["type"] == "ProcessGone"
    assert run["error"]["step"]["title"] == "Slow: second step"
    assert [(s["title"], s["status"]) for s in run["steps"]] == [
        ("Slow: first step", "done")
    ]
    # It ends at its last sign of life, not when the lock was taken over.
    assert run["error"]["heartbeat"] == run["finished"]

    # Had the first run been alive after all, it stops at its next step.
    for name in ("2", "3"):
        slow.open_gate(gates, name)
    response = first.result(timeout=60)
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "LockBroken"
    assert second.result(timeout=60).status_code == 200
    assert api.get("/@upgrade/history/1").json()["error"]["type"] == "ProcessGone"
    assert snapshot() == before


def test_other_host_is_stale_after_the_heartbeat_timeout(
    site, api, plant, rewind, snapshot, monkeypatch
):
    rewind({SLOW: "5000"})
    before = snapshot()
    run_id = plant(elsewhere(), age=30)

    lock = api.get("/@upgrade/lock").json()["lock"]
    assert (lock["state"], lock["holder"]["host"]) == ("alive", elsewhere()["host"])
    refused = api.post("/@upgrade", json={"profiles": [SLOW]})
    assert refused.status_code == 409
    assert refused.json()["lock"]["state"] == "alive"
    assert api.delete("/@upgrade/lock").status_code == 409
    # Restarting this process does not clear another host's lock.
    assert lifecycle.clear_dead_locks(site._p_jar.db()) == {}

    monkeypatch.setenv("COLLECTIVE_UPGRADEAPI_STALE_AFTER", "20")
    lock = api.get("/@upgrade/lock").json()["lock"]
    assert (lock["state"], lock["stale_reason"]) == ("stale", "no_heartbeat")
    refused = api.post("/@upgrade", json={"profiles": [SLOW]})
    assert refused.status_code == 409
    assert "no sign of life for more than 20 seconds" in refused.json()["message"]

    response = api.delete("/@upgrade/lock")
    assert response.status_code == 200
    run = api.get(f"/@upgrade/history/{run_id}").json()
    assert (run["result"], run["error"]["type"]) == ("abandoned", "LockBroken")
    assert run["error"]["step"] == STEP
    assert run["error"]["heartbeat"] == run["finished"]
    assert run["duration"] == pytest.approx(10, abs=0.01)
    assert snapshot() == before
    assert api.post("/@upgrade", json={"profiles": [SLOW], "dry_run": True}).ok


# -- a Zope process that starts, and one that stops --------------------------


def test_starting_zope_clears_its_dead_predecessors_locks(site, api, plant):
    run_id = plant(predecessor(), age=3)

    cleared = lifecycle.clear_dead_locks(site._p_jar.db())

    assert list(cleared) == [site.getId()]
    assert cleared[site.getId()]["stale_reason"] == "process_gone"
    assert api.get("/@upgrade/lock").json()["lock"] is None
    status = api.get("/@upgrade/status").json()
    assert (status["state"], status["error_info"]["type"]) == (
        "abandoned",
        "ProcessGone",
    )
    run = api.get(f"/@upgrade/history/{run_id}").json()
    assert run["error"]["step"] == STEP
    assert run["duration"] == pytest.approx(10, abs=0.01)
    # Nothing else to clear.
    assert lifecycle.clear_dead_locks(site._p_jar.db()) == {}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_run_of_the_main_thread(
    api, site, gates, rewind, snapshot, signum
):
    """A run in the main thread (as the in-process door runs) handles SIGTERM
    and SIGINT while it runs, and only then: inside a step it unwinds, is
    recorded as abandoned, releases the lock, and the process exits."""
    from collective.upgradeapi import api as upgrades
    from collective.upgradeapi.engine.selection import Selection

    rewind({SLOW: "5000"})
    before = snapshot()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    seen = {}

    def stop_it():
        # A real signal to this very process, once the run is inside its step
        # and has put its handler in place (without it, SIGTERM would end the
        # test run: then no signal is sent and the test fails).
        wait_for_status(api, at_step("Slow: first step"))
        seen["handler"] = signal.getsignal(signum)
        if seen["handler"] is not handlers[signum]:
            os.kill(os.getpid(), signum)
        else:
            for name in ("1", "2", "3"):
                slow.open_gate(gates, name)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(stop_it)
        with pytest.raises(SystemExit) as stopped:
            upgrades.upgrade(site, Selection(profiles=[SLOW]), user="admin")

    assert seen["handler"] is not handlers[signum]
    assert stopped.value.code == 128 + signum
    # The previous handlers are back: nothing stays changed after a run.
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert api.get("/@upgrade/lock").json()["lock"] is None
    run = api.get("/@upgrade/history").json()["items"][0]
    assert (run["result"], run["committed"]) == ("abandoned", False)
    assert run["error"]["type"] == "Stopped"
    assert signal.Signals(signum).name in run["error"]["message"]
    assert run["error"]["step"]["title"] == "Slow: first step"
    assert snapshot() == before


def test_a_run_of_another_thread_sets_no_handler(api, background, gates, rewind):
    """Python lets only the main thread handle signals: a run of a Zope
    worker thread leaves the process's handlers alone (a stopped Zope process
    ends at once; see test_crash.py)."""
    rewind({SLOW: "5000"})
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    future = background({"profiles": [SLOW], "dry_run": True})
    wait_for_status(api, at_step("Slow: first step"))

    assert {s: signal.getsignal(s) for s in handlers} == handlers
    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)
    assert future.result(timeout=120).status_code == 200
