"""The change report: what each step of a run changed, and the run in total.

A :class:`Recorder` is active in the running thread while a run that records
changes goes on (:func:`recording`); :func:`step` brackets each step. What it
reports, per step and for the run (see ``docs/upgrade.md``):

- configuration (registry, catalog indexes and metadata, types, workflows and
  chains, actions, the site's role map): pictures (:mod:`.pictures`) taken
  before and after each step, compared; profile versions before -> after;
- GenericSetup import steps run: from GenericSetup's import events;
- content objects added, modified and removed (zope.lifecycleevent's events)
  and objects indexed, reindexed and unindexed (CMF's indexing queue), counted
  by portal type with a few paths each.

The subscribers and the queue processor (``changes.zcml``) return at once when
no recorder is active in their thread.
"""

from Acquisition import aq_base
from collective.upgradeapi.engine import changeset
from collective.upgradeapi.engine import pictures
from collective.upgradeapi.engine.selection import normalise_profile_id
from Products.CMFCore.indexing import processQueue
from Products.CMFCore.interfaces import IIndexQueueProcessor
from ZODB.POSException import ConflictError
from zope.interface import implementer

import contextlib
import threading
import transaction


#: Paths kept per category, portal type and step.
SAMPLE = 20
#: Objects told apart per step; beyond, an object may be counted twice.
DISTINCT = 20_000

_local = threading.local()


def active():
    """The :class:`Recorder` of this thread's run, or ``None``."""
    return getattr(_local, "recorder", None)


class Recorder:
    """Records the changes of one run on ``site``."""

    def __init__(self, site):
        self.site = site
        self.first = self.last = self.current = None
        self.savepoints, self.counted = pictures.Savepoints(), 0
        #: ``id(step result)`` -> its :class:`Events` (a unit run again
        #: replaces its steps' events).
        self.recorded = {}

    def _picture(self):
        """A picture, reused from the end of the last step when the same
        transaction goes on (nothing runs between steps but the versions)."""
        txn = transaction.get()
        if self.last is not None and self.last[0] is txn:
            return {**self.last[1], "versions": pictures.versions(self.site)}
        self.savepoints.join(txn)
        self.counted = self.savepoints.count
        return pictures.take(self.site)

    @contextlib.contextmanager
    def step(self, step_result):
        """Record what happens inside the block as ``step_result.changes``; a
        step that raises gets every category "unknown"."""
        try:
            before = self._picture()
            self.last = None  # until the step ends well
            if self.first is None:
                self.first = before
            self.current = events = Events()
            try:
                yield
                try:
                    # What the step queued for indexing is counted as its own.
                    processQueue()
                except ConflictError:
                    raise
                except Exception:
                    # Indexing fails again at the commit; here, it is not seen.
                    events.unseen.add("catalog")
            finally:
                self.current = None
            events.seen.clear()
            # plone.registry announces every write: unannounced, no new picture.
            clean = self.savepoints.count == self.counted
            after = pictures.take(self.site, before, events.records, clean)
            self.counted = self.savepoints.count
            self.last = (transaction.get(), after)
            changes = report(*changeset.compare(before, after, events.records), events)
        except BaseException:
            step_result.changes = {"unknown": sorted(CATEGORIES)}
            raise
        self.recorded[id(step_result)] = events
        step_result.changes = changes

    def total(self, step_results):
        """The run's changes: its first and last pictures compared, and the
        events of ``step_results`` added up."""
        if self.first is None:
            return {}
        events = Events()
        for step_result in step_results:
            if (recorded := self.recorded.get(id(step_result))) is not None:
                events.add(recorded)
        return report(*changeset.compare(self.first, self._picture()), events)


class Events:
    """What one step announced: content, indexing, imports."""

    def __init__(self):
        self.content = {}  # (category, verb) -> portal type -> [count, paths]
        self.seen = set()
        self.approximate = False
        self.records = set()  # the names of the registry records written
        self.unseen = set()  # the categories it could not count
        self.imports = {}

    def count(self, category, verb, obj):
        portal_type = getattr(aq_base(obj), "portal_type", None)
        if not isinstance(portal_type, str):
            return
        try:
            path = "/".join(obj.getPhysicalPath())
        except (AttributeError, TypeError):
            return
        key = (category, verb, path)
        if key in self.seen:
            return
        if len(self.seen) < DISTINCT:
            self.seen.add(key)
        else:
            self.approximate = True
        self._tally((category, verb), portal_type, 1, [path])

    def _tally(self, key, portal_type, count, paths):
        """Count ``count`` objects of ``portal_type`` under ``key``, and keep
        their ``paths`` up to :data:`SAMPLE`."""
        entry = self.content.setdefault(key, {}).setdefault(portal_type, [0, []])
        entry[0] += count
        for path in paths:
            if len(entry[1]) < SAMPLE and path not in entry[1]:
                entry[1].append(path)

    def imported(self, profile_id, steps, full=False):
        """A profile's import steps were run (all of them: ``"all"``)."""
        profile_id = normalise_profile_id(profile_id)
        found = self.imports.setdefault(profile_id, [])
        if full or found == "all":
            self.imports[profile_id] = "all"
            return
        found.extend(step for step in steps if step not in found)

    def add(self, other):
        for key, by_type in other.content.items():
            for portal_type, (count, paths) in by_type.items():
                self._tally(key, portal_type, count, paths)
        self.approximate = self.approximate or other.approximate
        self.unseen |= other.unseen
        for profile_id, steps in other.imports.items():
            self.imported(profile_id, steps, full=steps == "all")


def report(found, unknown, events):
    """The change report (plain JSON data) of pictures and events: the
    configuration's categories, the objects counted, then the rest."""
    changes = {key: value for key, value in found.items() if key != "versions"}
    for (category, verb), by_type in sorted(events.content.items()):
        changes.setdefault(category, {})[verb] = {
            portal_type: {"count": count, "paths": paths}
            for portal_type, (count, paths) in sorted(by_type.items())
        }
    rest = {
        "approximate": events.approximate,
        "import_steps": events.imports,
        "versions": found.get("versions"),
        "unknown": sorted(set(unknown) | events.unseen),
    }
    changes.update({key: value for key, value in rest.items() if value})
    return changes


@contextlib.contextmanager
def recording(recorder):
    """Make ``recorder`` (or nothing) this thread's active recorder."""
    previous = active()
    _local.recorder = recorder
    try:
        yield recorder
    finally:
        _local.recorder = previous


#: Every category a step's report may hold.
CATEGORIES = (*pictures.READERS, "content", "import_steps")


def step(step_result):
    """Record the changes of one step as ``step_result.changes`` when a
    recorder is active (:meth:`Recorder.step`); do nothing otherwise."""
    recorder = active()
    return contextlib.nullcontext() if recorder is None else recorder.step(step_result)


# -- what the subscribers hear ------------------------------------------------


def _current():
    """The :class:`Events` of the step this thread's run records, or ``None``."""
    return getattr(active(), "current", None)


def _count(category, verb):
    """A subscriber (or indexing call) that counts ``obj`` under ``verb``."""

    def subscriber(obj, *event_or_indexing, **indexing):
        if (events := _current()) is not None:
            events.count(category, verb, obj)

    return subscriber


content_added = _count("content", "added")
content_modified = _count("content", "modified")
content_removed = _count("content", "removed")


def registry_written(event):
    """A registry record was added, changed or removed."""
    if (events := _current()) is not None:
        events.records.add(event.record.__name__)


def profile_imported(event):
    if (events := _current()) is not None:
        events.imported(event.profile_id, event.steps, event.full_import)


@implementer(IIndexQueueProcessor)
class IndexingCounter:
    """Counts what CMF's indexing queue indexes, by portal type."""

    index = staticmethod(_count("catalog", "indexed"))
    unindex = staticmethod(_count("catalog", "unindexed"))
    reindex = staticmethod(_count("catalog", "reindexed"))

    def begin(self):
        pass

    commit = abort = begin
