"""Capture the log lines an upgrade emits, whatever the logging configuration.

A site whose root logger is at WARNING never creates INFO records, so a plain
handler would see almost nothing. While a capture goes on, the root logger
and the upgrade machinery's loggers are lowered to INFO, and a gate (a filter)
on every handler drops what the lowering adds: what any thread's handlers
write does not change (a handler added while captures go on is gated when
the next one starts). One dispatching handler on the root logger hands each
record to the captures of the thread that emitted it, so requests served
meanwhile, and a run on another site in the same process, stay out of a run's
report.

Captures share that installation: the first one installs it, the last one to
end removes it and restores every level, in whatever order they start and
end. While no capture goes on, nothing of it is left in :mod:`logging`.

A capture keeps a bounded part of what it sees (:class:`Bounded`): the first
and last lines of each step's log and of the report, and a line that says
how much was left out in between.
"""

from collections import deque
from contextlib import contextmanager

import logging
import threading


# Loggers of the upgrade machinery that a site may have set above INFO.
MACHINERY = (
    "GenericSetup",
    "Products.GenericSetup",
    "Products.CMFPlone",
    "plone.app.upgrade",
    "plone",
)

FORMAT = "%(levelname)s %(name)s: %(message)s"
#: The lowest level a capture collects.
LEVEL = logging.INFO

#: Most characters of one step's log a capture keeps (first and last lines).
STEP_BUDGET = 64 * 1024
#: Most characters of the report a capture keeps (first and last lines).
REPORT_BUDGET = 256 * 1024

LEFT_OUT = (
    "[... {lines} log lines ({size} characters) left out here; the server's "
    "event log has every line at the levels it records]"
)


def shortened(line, most):
    """``line``, or its start and end when it is longer than ``most``."""
    if len(line) <= most:
        return line
    keep = max(most // 2 - 40, 0)
    cut = len(line) - 2 * keep
    return f"{line[:keep]} [... {cut} characters left out] {line[len(line) - keep :]}"


class Bounded:
    """Lines kept within ``budget`` characters: the first ones and the last
    ones, half the budget each, counting the lines dropped in between.

    :param left_out: the line said in place of those dropped (``{lines}``,
        ``{size}``).
    """

    def __init__(self, budget, left_out=LEFT_OUT):
        self.left_out = left_out
        self.half = budget // 2
        self.head = []
        self.head_size = 0
        self.tail = deque()
        self.tail_size = 0
        self.dropped = 0
        self.dropped_size = 0

    def add(self, line):
        size = len(line) + 1
        if not self.tail and self.head_size + size <= self.half:
            self.head.append(line)
            self.head_size += size
            return
        line = shortened(line, self.half - 1)
        self.tail.append(line)
        self.tail_size += len(line) + 1
        while self.tail_size > self.half:
            old = self.tail.popleft()
            self.tail_size -= len(old) + 1
            self.dropped += 1
            self.dropped_size += len(old) + 1

    def lines(self):
        """The lines kept, with a line in place of those left out."""
        marker = []
        if self.dropped:
            marker = [self.left_out.format(lines=self.dropped, size=self.dropped_size)]
        return [*self.head, *marker, *self.tail]


class Collector:
    """The lines of one thread, each tagged with a marker, within budgets.

    Set :attr:`marker` (for example the index of the running step) to tag the
    following lines.
    """

    def __init__(self, thread_id, step_budget=STEP_BUDGET, report_budget=REPORT_BUDGET):
        self.thread_id = thread_id
        self.marker = None
        self.step_budget = step_budget
        self.report = Bounded(report_budget)
        #: the lines of each marker, so that one step's lines are found
        #: without reading the whole capture again.
        self.tagged = {}

    def add(self, line):
        self.report.add(line)
        kept = self.tagged.get(self.marker)
        if kept is None:
            kept = self.tagged[self.marker] = Bounded(self.step_budget)
        kept.add(line)

    def lines(self, marker=None, every=True):
        """The lines kept, all of them or only those tagged ``marker``."""
        if every:
            return self.report.lines()
        kept = self.tagged.get(marker)
        return [] if kept is None else kept.lines()

    def text(self):
        """The capture as a report, one line per record."""
        return "".join(f"{line}\n" for line in self.lines())


def _logger(name):
    if name == "root":
        return logging.root
    return logging.root.manager.loggerDict.get(name) or logging.root


class _Gate(logging.Filter):
    """Drops the records that exist only because a capture lowered a level."""

    def __init__(self, saved):
        super().__init__()
        self.saved = saved

    def filter(self, record):
        logger = _logger(record.name)
        while logger is not None:
            level = self.saved.get(logger, logger.level)
            if level:
                return record.levelno >= level
            logger = logger.parent
        return True


class _Dispatcher(logging.Handler):
    """On the root logger: gives each record to its thread's collectors."""

    def __init__(self, gate):
        super().__init__(logging.NOTSET)
        self.gate = gate
        #: thread id -> tuple of collectors (replaced, never changed in place)
        self.collectors = {}
        self.setFormatter(logging.Formatter(FORMAT))

    def handle(self, record):
        # No lock: a thread's collectors only get that thread's records.
        collectors = self.collectors.get(record.thread, ())
        if collectors and record.levelno >= LEVEL:
            try:
                line = self.format(record)
            except Exception:  # a broken log call must not break the upgrade
                line = f"{record.levelname} {record.name}: {record.msg!r}"
            for collector in collectors:
                collector.add(line)
        self._last_resort(record)
        return True

    def _last_resort(self, record):
        """Without this handler, a record no handler takes goes to logging's
        last resort: so it still does."""
        resort = logging.lastResort
        if resort is None or record.levelno < resort.level:
            return
        logger = _logger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return
            logger = logger.parent
        if self.gate.filter(record):
            resort.handle(record)


class _Installation:
    """What the captures going on installed in logging; one per process."""

    def __init__(self):
        self.lock = threading.Lock()
        #: logger -> its level before a capture lowered it
        self.saved = {}
        self.gate = _Gate(self.saved)
        #: the root logger's dispatcher, while a capture goes on
        self.dispatcher = None
        self.gated = []

    def start(self, collector):
        with self.lock:
            if self.dispatcher is None:
                self.dispatcher = _Dispatcher(self.gate)
                logging.root.addHandler(self.dispatcher)
            dispatcher = self.dispatcher
            thread = collector.thread_id
            dispatcher.collectors = {
                **dispatcher.collectors,
                thread: (*dispatcher.collectors.get(thread, ()), collector),
            }
            self._lower()

    def _lower(self):
        # Only loggers that exist: creating one would stay after the run.
        known = logging.root.manager.loggerDict
        loggers = [known.get(name) for name in MACHINERY]
        loggers = [
            logger
            for logger in (logging.root, *loggers)
            if isinstance(logger, logging.Logger) and logger.getEffectiveLevel() > LEVEL
        ]
        if loggers or self.saved:
            # Gated first: no record made by the lowering reaches a handler.
            for handler in _all_handlers():
                if handler is not self.dispatcher and handler not in self.gated:
                    handler.addFilter(self.gate)
                    self.gated.append(handler)
        for logger in loggers:
            self.saved.setdefault(logger, logger.level)
            logger.setLevel(LEVEL)

    def end(self, collector):
        with self.lock:
            dispatcher = self.dispatcher
            collectors = dict(dispatcher.collectors)
            thread = collector.thread_id
            left = tuple(c for c in collectors.pop(thread) if c is not collector)
            if left:
                collectors[thread] = left
            dispatcher.collectors = collectors
            if collectors:
                return
            logging.root.removeHandler(dispatcher)
            self.dispatcher = None
            # Levels first: the gate stays while records made at the
            # lowered levels may still be on their way.
            for logger, level in self.saved.items():
                logger.setLevel(level)
            self.saved.clear()
            for handler in self.gated:
                handler.removeFilter(self.gate)
            self.gated.clear()


def _all_handlers():
    loggers = [logging.root, *list(logging.root.manager.loggerDict.values())]
    # Placeholders (names with no logger yet) have no handlers.
    handlers = (h for logger in loggers for h in getattr(logger, "handlers", ()))
    return list(dict.fromkeys(handlers))


_INSTALLATION = _Installation()


@contextmanager
def capture(step_budget=STEP_BUDGET, report_budget=REPORT_BUDGET):
    """Collect every record at :data:`LEVEL` and above emitted by this thread.

    :param step_budget: most characters of a marker's lines kept.
    :param report_budget: most characters of the report kept.
    :returns: a context manager yielding a :class:`Collector`.
    """
    collector = Collector(threading.get_ident(), step_budget, report_budget)
    _INSTALLATION.start(collector)
    try:
        yield collector
    finally:
        _INSTALLATION.end(collector)
