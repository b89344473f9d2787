"""Capture the log lines an upgrade emits, whatever the logging configuration.

A site whose root logger is at WARNING never creates INFO records, so a plain
handler would see almost nothing. While capturing, the root logger and the
upgrade machinery's loggers are lowered to INFO; a filter on every existing
handler drops what that lowering adds, so the site's own log output does not
change. Only records of the capturing thread are collected: other requests
served meanwhile stay out of the report.
"""

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


class Collector(logging.Handler):
    """Collects formatted lines of one thread, each tagged with a marker.

    Set :attr:`marker` (for example the index of the running step) to tag the
    following lines.
    """

    def __init__(self, thread_id, level=logging.INFO):
        super().__init__(level)
        self.thread_id = thread_id
        self.marker = None
        self.entries = []
        #: the lines of each marker, so that one step's lines are found
        #: without reading the whole capture again.
        self.tagged = {}
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record):
        if record.thread != self.thread_id:
            return
        try:
            line = self.format(record)
        except Exception:  # a broken log call must not break the upgrade
            line = f"{record.levelname} {record.name}: {record.msg!r}"
        self.entries.append((self.marker, line))
        self.tagged.setdefault(self.marker, []).append(line)

    def lines(self, marker=None, every=True):
        """The lines collected, all of them or only those tagged ``marker``."""
        if every:
            return [line for _, line in self.entries]
        return list(self.tagged.get(marker, ()))

    def text(self):
        """The whole capture as a report, one line per record."""
        return "".join(f"{line}\n" for line in self.lines())


class _KeepSiteOutput(logging.Filter):
    """Drops records that exist only because the capture lowered a level."""

    def __init__(self, saved_levels):
        super().__init__()
        self.saved_levels = saved_levels

    def _old_effective_level(self, name):
        logger = logging.getLogger(name) if name != "root" else logging.root
        while logger is not None:
            level = self.saved_levels.get(id(logger), logger.level)
            if level:
                return level
            logger = logger.parent
        return logging.NOTSET

    def filter(self, record):
        return record.levelno >= self._old_effective_level(record.name)


def _all_handlers():
    loggers = [logging.root]
    for candidate in list(logging.root.manager.loggerDict.values()):
        if isinstance(candidate, logging.Logger):
            loggers.append(candidate)
    handlers = []
    for logger in loggers:
        for handler in logger.handlers:
            if handler not in handlers:
                handlers.append(handler)
    return handlers


@contextmanager
def capture(level=logging.INFO):
    """Collect every record at ``level`` and above emitted by this thread.

    :param level: the lowest level to collect.
    :returns: a context manager yielding a :class:`Collector`.
    """
    collector = Collector(threading.get_ident(), level)
    lowered = {}
    for name in ("root", *MACHINERY):
        logger = logging.root if name == "root" else logging.getLogger(name)
        if logger.getEffectiveLevel() > level:
            lowered[id(logger)] = (logger, logger.level)
    keep = _KeepSiteOutput({key: old for key, (_, old) in lowered.items()})
    filtered = []
    if lowered:
        filtered = _all_handlers()
        for handler in filtered:
            handler.addFilter(keep)
        for logger, _ in lowered.values():
            logger.setLevel(level)
    logging.root.addHandler(collector)
    try:
        yield collector
    finally:
        logging.root.removeHandler(collector)
        for logger, old in lowered.values():
            logger.setLevel(old)
        for handler in filtered:
            handler.removeFilter(keep)
