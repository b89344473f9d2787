"""Nothing left behind: the records of this package are plain persistent data.

Every database record this package writes (lock, status, history, steps run
on their own, the audit mark) is read back from the storage and its pickle
inspected without unpickling: no class of this package may appear, so a site
opened without the package has no broken object. ``api.remove_records``
deletes them all.
"""

from collective.upgradeapi import api as engine
from collective.upgradeapi.tracking.store import KEYS
from ZODB.serialize import referencesf
from zope.annotation.interfaces import IAnnotations

import pickletools
import transaction


BASE = "collective.upgradeapi.testing:base"
BROKEN = "collective.upgradeapi.testing:broken"
PACKAGE = "collective.upgradeapi"


def classes_in(data):
    """The ``module.name`` of every class a ZODB record's pickles refer to."""
    found = set()
    strings = []
    for opcode, arg, _ in pickletools.genops(data[: _first_pickle_end(data)]):
        found |= _globals(opcode, arg, strings)
    for opcode, arg, _ in pickletools.genops(data[_first_pickle_end(data) :]):
        found |= _globals(opcode, arg, strings)
    return found


def _first_pickle_end(data):
    """A record holds two pickles (class, then state); where the first ends."""
    *_, (_, _, position) = pickletools.genops(data)
    return position + 1


def _globals(opcode, arg, strings):
    if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
        strings.append(arg)
    if opcode.name == "GLOBAL":
        return {arg.replace(" ", ".")}
    if opcode.name == "STACK_GLOBAL":
        return {".".join(strings[-2:])}
    return set()


def records_of(site):
    """Every stored record reachable from this package's annotations."""
    storage = site._p_jar.db().storage
    annotations = IAnnotations(site)
    todo = [annotations[key]._p_oid for key in KEYS if key in annotations]
    seen = {}
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        data, _ = storage.load(oid)
        seen[oid] = data
        todo.extend(referencesf(data))
    return seen


def test_records_are_plain_data(api, site, rewind, sync):
    rewind({BASE: "1000", BROKEN: "3000"})
    # A dry run, a failed run, a single step ahead of its profile, a real run.
    assert api.post("/@upgrade", json={"profiles": [BASE], "dry_run": True}).ok
    assert api.post("/@upgrade", json={"profiles": [BROKEN]}).status_code == 500
    base = api.get("/@upgrade", params={"profile": BASE}).json()["profiles"][0]
    single = {"steps": [base["steps"][2]["id"]]}
    assert api.post("/@upgrade", json=single).status_code == 200
    assert api.post("/@upgrade", json={"profiles": [BASE]}).status_code == 200
    sync()

    records = records_of(site)

    assert set(KEYS) <= set(IAnnotations(site))
    assert len(records) > 5
    classes = set().union(*(classes_in(data) for data in records.values()))
    assert not {name for name in classes if name.startswith(PACKAGE)}, classes
    assert "persistent.mapping.PersistentMapping" in classes


def test_classes_in_finds_a_class_of_this_package():
    """The check above can fail: a record of a class of ours is seen."""
    from collective.upgradeapi.testing import patterns
    from persistent import Persistent

    import io
    import pickle

    class Record(Persistent):
        pass

    Record.__module__ = patterns.__name__
    Record.__qualname__ = "Record"
    patterns.Record = Record
    try:
        stream = io.BytesIO()
        pickler = pickle.Pickler(stream, 3)
        pickler.dump(Record)
        pickler.dump({"a": 1})
        found = classes_in(stream.getvalue())
    finally:
        del patterns.Record
    assert f"{patterns.__name__}.Record" in found


def test_remove_records(api, site, rewind, sync):
    rewind({BASE: "1000"})
    assert api.post("/@upgrade", json={"profiles": [BASE]}).status_code == 200
    sync()
    present = set(KEYS) & set(IAnnotations(site))
    assert len(present) >= 2

    removed = engine.remove_records(site)
    transaction.commit()

    assert set(removed) == present
    assert not set(KEYS) & set(IAnnotations(site))
    assert api_get_history(api) == []


def api_get_history(session):
    return session.get("/@upgrade/history").json()["items"]
