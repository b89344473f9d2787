"""Log capture: each run gets its own thread's lines, others' output unchanged.

Two captures overlap on two threads (two runs on two sites of one process),
in every order of start and end, while a third thread logs as a request
served meanwhile would. Each thread runs the jobs it is given one at a time
and the test waits for each job: the order of every log call is fixed, so
what the site's handlers saw is compared line for line with the same script
run without captures.
"""

from collective.upgradeapi.engine import logcapture
from concurrent.futures import ThreadPoolExecutor

import gc
import logging
import pytest
import tracemalloc


#: What :func:`emit` logs, and the lines a capture keeps of it.
EMITTED = (
    ("GenericSetup.upgrade", logging.INFO, "info"),
    ("plone.app.upgrade.v60", logging.WARNING, "warning"),
    ("plone.app.upgrade.v60", logging.ERROR, "error"),
    ("collective.addon", logging.DEBUG, "debug"),
    ("collective.addon", logging.INFO, "addon info"),
    ("audit.trail", logging.INFO, "audit"),
    ("collective.addon", logging.WARNING, "addon warning"),
)


def emit(tag):
    for name, level, text in EMITTED:
        logging.getLogger(name).log(level, "%s %s", tag, text)


def captured(tag):
    """The lines a capture keeps of ``emit(tag)`` (not the non-propagating
    ``audit.trail``, not DEBUG)."""
    return [
        f"{logging.getLevelName(level)} {name}: {tag} {text}"
        for name, level, text in EMITTED
        if level >= logging.INFO and name != "audit.trail"
    ]


class Recording(logging.Handler):
    def __init__(self):
        super().__init__()
        self.seen = []

    def emit(self, record):
        self.seen.append((record.threadName, record.name, record.getMessage()))


def logging_state():
    """Levels, handlers and filters of every logger and handler."""
    loggers = {"root": logging.root}
    for name, candidate in logging.root.manager.loggerDict.items():
        if isinstance(candidate, logging.Logger):
            loggers[name] = candidate
    state = {}
    for name, logger in loggers.items():
        state[name] = (
            logger.level,
            logger.getEffectiveLevel(),
            logger.propagate,
            tuple(logger.filters),
            tuple((handler, tuple(handler.filters)) for handler in logger.handlers),
        )
    return state


def live_handlers():
    gc.collect()
    handlers = [ref() for ref in logging._handlerList]
    return [handler for handler in handlers if handler is not None]


@pytest.fixture
def site_logging():
    """A site's logging: root at WARNING, ``plone`` at ERROR, a handler on
    the root and one on a logger that does not propagate.

    :returns: ``(root_handler, audit_handler)``.
    """
    for name, _, _ in EMITTED:
        logging.getLogger(name)
    root = logging.root
    plone = logging.getLogger("plone")
    audit = logging.getLogger("audit.trail")
    saved = (root.level, plone.level, audit.propagate)
    root.setLevel(logging.WARNING)
    plone.setLevel(logging.ERROR)
    audit.propagate = False
    handlers = Recording(), Recording()
    root.addHandler(handlers[0])
    audit.addHandler(handlers[1])
    yield handlers
    root.removeHandler(handlers[0])
    audit.removeHandler(handlers[1])
    root.setLevel(saved[0])
    plone.setLevel(saved[1])
    audit.propagate = saved[2]


class Worker:
    """One thread that runs the jobs it is given, in order; :meth:`do`
    returns when the job is done."""

    def __init__(self, name):
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=name)

    def do(self, job, *args):
        return self.executor.submit(job, *args).result(timeout=60)

    def stop(self):
        self.executor.shutdown()


class Run:
    """A capture on a worker's thread, started and ended by jobs; its steps
    tag their lines as the runner does."""

    def __init__(self, worker, enabled):
        self.worker = worker
        self.enabled = enabled
        self.manager = logcapture.capture()
        self.collector = None
        self.steps = {}

    def start(self):
        if self.enabled:
            self.collector = self.worker.do(self.manager.__enter__)

    def end(self):
        if self.enabled:
            self.worker.do(self.manager.__exit__, None, None, None)

    def step(self, marker, tag):
        def job():
            if self.collector is not None:
                self.collector.marker = marker
            emit(tag)
            if self.collector is not None:
                self.steps[marker] = self.collector.lines(marker, every=False)
                self.collector.marker = None

        self.worker.do(job)


def script(starts, ends, enabled):
    """Two runs overlapping, and a request thread logging throughout.

    :returns: the runs by name.
    """
    workers = {name: Worker(name) for name in "ABC"}
    runs = {name: Run(workers[name], enabled) for name in "AB"}
    request = workers["C"]
    try:
        runs[starts[0]].start()
        request.do(emit, "c1")
        runs[starts[0]].step(1, f"{starts[0]}-1")
        runs[starts[1]].start()
        runs[starts[1]].step(1, f"{starts[1]}-1")
        request.do(emit, "c2")
        runs[starts[0]].step(2, f"{starts[0]}-2")
        runs[ends[0]].end()
        # The run still going on gets all its lines, the other thread none.
        runs[ends[1]].step(3, f"{ends[1]}-3")
        request.do(emit, "c3")
        workers[ends[0]].do(emit, f"{ends[0]}-after")
        runs[ends[1]].end()
        for name in "ABC":
            workers[name].do(emit, f"{name}-last")
    finally:
        for worker in workers.values():
            worker.stop()
    return runs


@pytest.mark.parametrize("ends", ["AB", "BA"])
@pytest.mark.parametrize("starts", ["AB", "BA"])
def test_overlapping_captures(site_logging, starts, ends):
    before = logging_state()
    handlers_before = live_handlers()
    script(starts, ends, enabled=False)
    without = [list(handler.seen) for handler in site_logging]
    for handler in site_logging:
        handler.seen.clear()

    runs = script(starts, ends, enabled=True)

    assert [handler.seen for handler in site_logging] == without
    # The site's handlers saw only what its levels let through.
    assert {message.split()[-1] for _, _, message in without[0]} == {"error", "warning"}
    assert without[1] == []
    for name, run in runs.items():
        steps = [1, 2] if name == starts[0] else [1]
        if name == ends[1]:
            steps.append(3)
        assert run.steps == {
            marker: captured(f"{name}-{marker}") for marker in steps
        }, name
        report = [line for marker in steps for line in captured(f"{name}-{marker}")]
        assert run.collector.lines() == report
        assert run.collector.text() == "".join(f"{line}\n" for line in report)
    assert logging_state() == before
    assert live_handlers() == handlers_before


def test_nested_captures_on_one_thread(site_logging):
    before = logging_state()
    with logcapture.capture() as outer:
        emit("o")
        with logcapture.capture() as inner:
            emit("i")
        emit("o2")
    assert inner.lines() == captured("i")
    assert outer.lines() == captured("o") + captured("i") + captured("o2")
    assert logging_state() == before


def test_a_record_no_handler_takes_still_reaches_the_last_resort(monkeypatch):
    resort = Recording()
    resort.setLevel(logging.WARNING)
    monkeypatch.setattr(logging, "lastResort", resort)
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging.root, "level", logging.WARNING)
    monkeypatch.setattr(logging.getLogger("audit.trail"), "propagate", False)
    with logcapture.capture() as collector:
        emit("x")
    # Without a capture, the same records reach it.
    emit("y")
    seen = [message for _, _, message in resort.seen]
    assert seen == [
        "x warning",
        "x error",
        "x addon warning",
        "y warning",
        "y error",
        "y addon warning",
    ]
    assert collector.lines() == captured("x")


def test_a_loud_step_keeps_its_first_and_last_lines():
    logger = logging.getLogger("collective.addon")
    with logcapture.capture(step_budget=2000, report_budget=5000) as collector:
        logger.info("before the step")
        collector.marker = 1
        for number in range(10000):
            logger.info("line %05d", number)
        collector.marker = None
        logger.info("after the step")
    step = collector.lines(1, every=False)
    report = collector.lines()

    assert sum(len(line) + 1 for line in step) <= 2000 + 200
    assert sum(len(line) + 1 for line in report) <= 5000 + 200
    line_size = len("INFO collective.addon: line 00000") + 1
    kept = [line for line in step if "left out" not in line]
    assert step[0].endswith("line 00000")
    assert step[-1].endswith("line 09999")
    assert step[len(kept) // 2].startswith(
        f"[... {10000 - len(kept)} log lines ({(10000 - len(kept)) * line_size} "
        "characters) left out here; the server's event log has every line"
    )
    assert report[0].endswith("before the step")
    assert report[-1].endswith("after the step")
    assert "left out here" in report[len(report) // 2]
    assert collector.text() == "".join(f"{line}\n" for line in report)


def test_a_huge_line_keeps_its_start_and_end():
    bounded = logcapture.Bounded(1000)
    bounded.add("first")
    bounded.add("a" * 300 + "b" * 5000 + "c" * 300)

    first, line = bounded.lines()
    assert first == "first"
    assert len(line) < 500
    assert line.startswith("a" * 100) and line.endswith("c" * 100)
    assert "characters left out" in line


def test_a_capture_holds_no_more_than_it_keeps():
    """50 MB logged: the capture never holds more than its budgets."""
    logger = logging.getLogger("collective.addon")
    text = "x" * 1000
    tracemalloc.start()
    try:
        with logcapture.capture() as collector:
            collector.marker = 1
            for _ in range(50_000):
                logger.info(text)
            collector.marker = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = logcapture.STEP_BUDGET + logcapture.REPORT_BUDGET
    assert peak < 2 * kept + 1024 * 1024
    assert len(collector.lines(1, every=False)) <= logcapture.STEP_BUDGET // 1000 + 1
