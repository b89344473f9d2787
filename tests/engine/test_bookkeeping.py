"""What a run's bookkeeping costs: history entries bounded, lines stored once,
status writes throttled, and still exact at the start and end of a run.

The history's storage is tested on a plain ZODB database (no Plone); the
writes of whole runs on the functional layer's site, in process.
"""

from collective.upgradeapi import api
from collective.upgradeapi import config
from collective.upgradeapi.engine.selection import Selection
from collective.upgradeapi.tracking import publishing
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking import store
from collective.upgradeapi.tracking.state import RunState
from pathlib import Path
from persistent.mapping import PersistentMapping
from ZODB.FileStorage import FileStorage
from ZODB.serialize import referencesf

import json
import logging
import pytest
import tempfile
import threading
import time
import transaction
import zlib
import ZODB


BASE = "collective.upgradeapi.testing:base"
PRODUCT = "upgradeapi_bookkeeping"


def step(index, log=(), **more):
    return {
        "id": f"{index:032x}",
        "profile": "my.addon:default",
        "title": f"Step {index}",
        "source": str(1000 + index),
        "dest": str(1001 + index),
        "status": "done",
        "duration": 0.01,
        "log": list(log),
        **more,
    }


def report_of(steps, before="INFO x: Upgrading.\n", after="INFO x: Done.\n"):
    return before + "".join(f"{line}\n" for s in steps for line in s["log"]) + after


def kept(steps, report):
    """``(steps, report)`` as an entry stores and gives them back."""
    stored = store.unpack(store.pack(steps, report))
    return stored["steps"], stored["report"]


# -- the stored entry -------------------------------------------------------


def test_lines_are_stored_once_and_given_back_whole():
    steps = [
        step(0, ["INFO a: one", "INFO a: two\nTraceback (a second line)"]),
        step(1),
        step(
            2, ["ERROR b: three"], status="failed", error={"type": "E", "message": "m"}
        ),
    ]
    report = report_of(steps)

    details = store.pack(steps, report)
    stored = json.loads(zlib.decompressobj(zdict=store.COMMON).decompress(details))

    assert stored["outline"] == ["INFO x: Upgrading.\n", 0, 2, "INFO x: Done.\n"]
    text = json.dumps(stored)
    assert text.count("INFO a: one") == text.count("ERROR b: three") == 1
    assert store.unpack(details) == {"steps": steps, "report": report, "profiles": []}


def test_a_log_not_found_in_the_report_is_kept_with_its_step():
    steps = [step(0, ["INFO a: only in the step"])]
    assert store.unpack(store.pack(steps, "INFO x: other\n")) == {
        "steps": steps,
        "report": "INFO x: other\n",
        "profiles": [],
    }


def test_long_logs_keep_their_first_and_last_lines_and_say_what_was_dropped():
    noisy = [f"INFO noisy: line {number:06d} {'x' * 60}" for number in range(50_000)]
    quiet = ["INFO quiet: the only line"]
    steps = [step(0, noisy), step(1, quiet)]
    report = report_of(steps)

    kept_steps, kept_report = kept(steps, report)

    assert len(report) > 3_000_000
    assert len(kept_report) < store.LOG_BUDGET + 1024
    log = kept_steps[0]["log"]
    assert log[0] == noisy[0] and log[-1] == noisy[-1]
    (marker,) = [line for line in log if line.startswith("[...")]
    dropped = len(noisy) - len(log) + 1
    assert f"{dropped} log lines" in marker
    assert "the server's event log has every line" in marker
    assert kept_steps[1]["log"] == quiet  # a small log is kept whole
    assert kept_report.startswith("INFO x: Upgrading.\n")
    assert kept_report.endswith("INFO quiet: the only line\nINFO x: Done.\n")
    assert marker in kept_report


def test_a_single_huge_line_is_cut_too():
    steps = [step(0, ["INFO huge: " + "y" * 200_000])]
    kept_steps, kept_report = kept(steps, report_of(steps))
    assert len(kept_report) < store.LOG_BUDGET + 1024
    assert "characters left out" in kept_steps[0]["log"][0]


def test_many_steps_keep_the_run_s_first_and_last_lines():
    steps = [step(index, [f"INFO s: ran step {index}"]) for index in range(10_000)]

    kept_steps, kept_report = kept(steps, report_of(steps))

    assert len(kept_steps) == 10_000
    assert kept_steps[0]["log"] == ["INFO s: ran step 0"]
    assert kept_steps[-1]["log"] == ["INFO s: ran step 9999"]
    markers = [line for line in kept_report.splitlines() if line.startswith("[...")]
    assert len(markers) == 1
    assert " steps dropped from the history" in markers[0]
    assert len(kept_report) < store.LOG_BUDGET + 1024


def test_tracebacks_and_messages_are_bounded():
    error = {"type": "E", "message": "m" * 50_000, "traceback": "t" * 100_000}
    ((stored,), _) = kept([step(0, error=error)], "")
    assert len(stored["error"]["message"]) < store.MESSAGE_BUDGET + 100
    assert len(stored["error"]["traceback"]) < store.TRACEBACK_BUDGET + 100
    assert "characters left out" in stored["error"]["traceback"]


@pytest.fixture
def records():
    """A site's records on a plain database; ``records.commit()`` commits."""
    db = ZODB.DB(None)
    connection = db.open()
    root = connection.root()
    root["state"] = store.new_data()
    transaction.commit()
    records = RunState(root["state"])
    records.commit = transaction.commit
    records.size = lambda obj: _stored_size(db.storage, obj._p_oid)
    yield records
    transaction.abort()
    connection.close()
    db.close()


def _stored_size(storage, oid):
    """Bytes of ``oid``'s record and of the records only it reaches."""
    seen, todo, total = set(), [oid], 0
    while todo:
        oid = todo.pop()
        if oid not in seen:
            seen.add(oid)
            data, _ = storage.load(oid)
            total += len(data)
            todo.extend(referencesf(data))
    return total


def test_an_entry_stays_small_whatever_the_run_logs(records):
    run_id = records.start("admin", True, {"profiles": None}, 2)
    lines = [f"INFO noisy: line {number:07d} {'z' * 60}" for number in range(100_000)]
    steps = [step(0, lines), step(1, ["INFO quiet: one line"])]
    profiles = [{"id": "my.addon:default", "versions": {"before": "1000"}}]
    records.finish(
        None,
        run_id,
        states.SUCCESS,
        steps=steps,
        report=report_of(steps),
        profiles=profiles,
    )
    records.commit()

    assert records.size(records.runs[run_id]) < 64 * 1024
    data = records.entry(run_id)
    assert set(data) >= {"steps", "report", "profiles", "error", "steps_total"}
    assert data["profiles"] == profiles
    assert "details" not in data and "format" not in data
    assert data["steps"][1]["log"] == ["INFO quiet: one line"]
    assert "dropped from the history" in data["report"]


def test_steps_recorded_while_running_cost_what_they_weigh(records):
    run_id = records.start("admin", False, {"profiles": None}, 300)
    records.commit()
    record = records.runs[run_id]
    own = len(record._p_jar.db().storage.load(record._p_oid)[0])
    for batch in range(30):
        records.add_steps(run_id, [step(batch * 10 + i) for i in range(10)])
        records.commit()
        # The run's own record is not rewritten with every step before.
        assert len(record._p_jar.db().storage.load(record._p_oid)[0]) <= own + 200

    running = records.entry(run_id)
    assert [s["title"] for s in running["steps"]] == [f"Step {i}" for i in range(300)]
    assert running["report"] == ""

    # Ended without a result (cancelled): the steps recorded are kept.
    records.finish(None, run_id, states.CANCELLED, error={"type": "Cancelled"})
    records.commit()
    finished = records.entry(run_id)
    assert len(finished["steps"]) == 300
    assert "live" not in records.runs[run_id]


def test_what_a_run_writes_does_not_grow_with_the_history(tmp_path):
    """Taking the lock writes the run's entry and one bucket of the history
    (at most 30 runs), and once the history is full the oldest run's; ending
    it rewrites the entry only. However long the history, the same bytes."""
    path = tmp_path / "Data.fs"
    db = ZODB.DB(FileStorage(str(path)))
    connection = db.open()
    connection.root()["state"] = store.new_data()
    transaction.commit()
    records = RunState(connection.root()["state"])
    profiles = [{"id": "my.addon:default", "versions": {"before": "1000"}}]
    written = {}
    for _ in range(config.history_size() + 45):
        size = path.stat().st_size
        run_id = records.start("admin", True, {"profiles": None}, 1, profiles)
        transaction.commit()
        ended = path.stat().st_size
        steps = [step(0, ["INFO a: one"])]
        records.finish(None, run_id, states.SUCCESS, steps=steps, report="")
        transaction.commit()
        written[run_id] = (ended - size, path.stat().st_size - ended)
    connection.close()
    db.close()

    assert len(records.runs) == config.history_size()
    assert list(records.runs.keys())[-1] == run_id
    started = [first for first, _ in written.values()]
    assert max(started) < 2 * 1024  # a long history's bucket: 1.2 KB alone
    ended = [last for _, last in written.values()]
    assert max(ended) - min(ended) < 64  # times and ids compress differently


def test_entries_stored_before_are_read_as_they_are(records):
    run_id = 1
    records.runs[run_id] = PersistentMapping(
        {
            "id": run_id,
            "result": "success",
            "steps": [step(0, ["INFO a: one"])],
            "report": "INFO a: one\n",
        }
    )
    assert records.entry(run_id)["steps"][0]["log"] == ["INFO a: one"]
    assert records.last_finished()["report"] == "INFO a: one\n"


def test_entries_packed_without_the_shared_dictionary_are_read(records):
    """Entries packed before ``store.COMMON`` existed: plain zlib."""
    entry = {"id": 1, "result": "success", "committed": False}
    entry.update(steps=[step(0, ["INFO a: one"])], report="INFO a: one\n")
    packed = store.packed(entry)
    text = zlib.decompressobj(zdict=store.COMMON).decompress(packed["details"])
    packed["details"] = zlib.compress(text, 9)
    records.runs[1] = PersistentMapping({**packed, "format": 3})
    assert records.entry(1)["steps"][0]["log"] == ["INFO a: one"]
    assert records.last_finished()["report"] == "INFO a: one\n"


# -- the flusher ------------------------------------------------------------


# -- whole runs -------------------------------------------------------------


@pytest.fixture
def writes(monkeypatch):
    """Every commit through a side connection: ``[(thread name, change)]``."""
    seen = []
    transact = publishing.SideConnection.transact

    def counting(self, change, attempts=5):
        seen.append((threading.current_thread().name, change))
        return transact(self, change, attempts)

    monkeypatch.setattr(publishing.SideConnection, "transact", counting)
    return seen


def test_a_quick_run_writes_twice(site, rewind, writes, sync, monkeypatch):
    """The lock taken with the run recorded; the lock released with its end."""
    monkeypatch.setattr(publishing, "STATUS_INTERVAL", 60)
    rewind({BASE: "1000"})

    result = api.upgrade(site, Selection(profiles=[BASE]), dry_run=True, user="me")

    assert [s.status for s in result.steps] == ["done"] * 4
    assert len(writes) == 2
    sync()
    status = api.status(site)
    assert (status["state"], status["steps_done"], status["steps_total"]) == (
        "rolled_back",
        4,
        4,
    )
    run = api.get_run(site, result.run_id)
    assert [s["status"] for s in run["steps"]] == ["done"] * 4
    assert run["report"] == result.report
    assert [s["log"] for s in run["steps"]] == [s.log for s in result.steps]


def test_a_real_run_also_writes_when_it_commits(site, rewind, writes, monkeypatch):
    monkeypatch.setattr(publishing, "STATUS_INTERVAL", 60)
    rewind({BASE: "1000"})
    result = api.upgrade(site, Selection(profiles=[BASE]), user="me")
    assert result.committed
    assert len(writes) == 3


def test_many_quick_steps_are_not_published_one_by_one(site, writes, sync, monkeypatch):
    monkeypatch.setattr(publishing, "STATUS_INTERVAL", 60)
    profile = _profile(site, "paced", [_sleeping(0)] * 20)
    try:
        result = api.upgrade(site, Selection(profiles=[profile]), user="me")
        assert result.ok
        assert len(writes) == 3
        sync()
        assert len(api.get_run(site, result.run_id)["steps"]) == 20
    finally:
        _remove(site, profile)


def test_a_long_step_is_published_while_it_runs(site, sync, monkeypatch):
    """The steps that ended and the step that runs are published while a
    step lasts: the long step waits until a reader sees it published."""
    monkeypatch.setattr(publishing, "STATUS_INTERVAL", 0)
    db = site._p_jar.db()
    seen = threading.Event()

    def long_step(tool):
        side = publishing.SideConnection(db=db, oid=site._p_oid)
        try:
            deadline = time.monotonic() + 60  # a safety net, not a wait
            while time.monotonic() < deadline and not seen.is_set():
                status = side.read(publishing.status)
                current = status["current_step"] or {}
                if current.get("title") == "Step 2" and status["steps_done"] == 2:
                    seen.set()
                    run_id = status["run_id"]
                    run = side.read(lambda state, run_id=run_id: state.entry(run_id))
                    assert [s["title"] for s in run["steps"]] == ["Step 0", "Step 1"]
                    return
                seen.wait(0.01)  # polls the database, each read the newest state
        finally:
            side.close()

    profile = _profile(site, "long", [_sleeping(0), _sleeping(0), long_step])
    try:
        result = api.upgrade(
            site, Selection(profiles=[profile]), dry_run=True, user="me"
        )
    finally:
        _remove(site, profile)
    assert seen.is_set()
    assert result.ok
    sync()
    status = api.status(site)
    assert (status["state"], status["steps_done"]) == ("rolled_back", 3)


def test_a_noisy_run_answers_a_bounded_log_and_records_a_bounded_entry(site, sync):
    profile = _profile(site, "noisy", [_noisy(40_000)])
    try:
        result = api.upgrade(
            site, Selection(profiles=[profile]), dry_run=True, user="me"
        )
    finally:
        _remove(site, profile)
    # The answer keeps the first and last lines (see test_logcapture.py).
    assert "INFO upgradeapi.noisy: Noisy line 0\n" in result.report
    assert "Noisy line 39999\n" in result.report
    assert "left out here" in result.report
    assert len(result.report) < 300 * 1024
    sync()
    record = publishing.records(site).runs[result.run_id]
    assert _stored_size(site._p_jar.db().storage, record._p_oid) < 64 * 1024
    run = api.get_run(site, result.run_id)
    assert "dropped from the history" in run["report"]
    assert run["steps"][0]["log"][0].endswith("Noisy line 0")


# -- benchmark-like profiles, registered by the tests themselves -------------


def _sleeping(seconds):
    def handler(tool):
        time.sleep(seconds)

    return handler


def _noisy(lines):
    def handler(tool):
        for number in range(lines):
            logging.getLogger("upgradeapi.noisy").info("Noisy line %d", number)

    return handler


def _profile(site, name, handlers):
    """An installed profile ``upgradeapi_bookkeeping:<name>`` with a step per
    handler, recorded at its first version and committed."""
    from Products.GenericSetup import EXTENSION
    from Products.GenericSetup.registry import _profile_registry
    from Products.GenericSetup.upgrade import _registerUpgradeStep
    from Products.GenericSetup.upgrade import UpgradeStep

    path = Path(tempfile.mkdtemp()) / name
    path.mkdir()
    (path / "metadata.xml").write_text(
        f"<metadata><version>{1000 + len(handlers)}</version></metadata>"
    )
    _profile_registry.registerProfile(name, name, "", str(path), PRODUCT, EXTENSION)
    profile = f"{PRODUCT}:{name}"
    for index, handler in enumerate(handlers):
        _registerUpgradeStep(
            UpgradeStep(
                f"Step {index}",
                profile,
                str(1000 + index),
                str(1001 + index),
                "",
                handler,
            )
        )
    site.portal_setup.setLastVersionForProfile(profile, "1000")
    transaction.commit()
    return profile


def _remove(site, profile):
    from Products.GenericSetup.registry import _profile_registry
    from Products.GenericSetup.upgrade import _upgrade_registry

    transaction.abort()
    site.portal_setup.unsetLastVersionForProfile(profile)
    transaction.commit()
    _profile_registry.unregisterProfile(profile.split(":")[1], PRODUCT)
    del _upgrade_registry._registry[profile]
