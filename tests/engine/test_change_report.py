"""The change report's plain-data functions: its summary line and its bound."""

from collective.upgradeapi.engine.changeset import bound
from collective.upgradeapi.engine.changeset import short
from collective.upgradeapi.engine.changeset import summary
from collective.upgradeapi.engine.changeset import VALUE_LIMIT

import json
import pytest
import transaction


REPORT = {
    "registry": {
        "added": {"a": 1, "b": 2},
        "changed": {"c": [1, 2]},
    },
    "catalog": {
        "indexes": {"added": ["my_index"]},
        "metadata": {"removed": ["x", "y"]},
        "writes": 342,
        "reindexed": {
            "Document": {"count": 340, "paths": []},
            "News Item": {"count": 2, "paths": []},
        },
    },
    "content": {"added": {"Folder": {"count": 1, "paths": ["/plone/f"]}}},
    "role_map": {"View": {"removed": ["Anonymous"]}},
    "versions": {"p:default": ["1", "2"]},
    "unknown": ["actions"],
}


def test_summary_says_every_category_in_one_line():
    assert summary(REPORT) == (
        "Changes: 2 registry records added, 1 registry record changed, "
        "1 catalog index added, 2 catalog metadata columns removed, "
        "342 catalog entries written, "
        "342 objects reindexed (340 Document, 2 News Item), "
        "1 object added (1 Folder), 1 permission with changed roles, "
        "1 profile version moved, not seen: actions."
    )
    assert summary({}) == "Changes: none seen."


def test_long_values_are_shortened():
    assert short(["a", "b"]) == ["a", "b"]
    long = short("x" * 1000)
    assert long.startswith('"' + "x" * (VALUE_LIMIT - 1))
    assert long.endswith("… (1002 characters)")


def test_bound_keeps_a_small_report_whole():
    assert bound(REPORT, 64 * 1024) is REPORT


def test_bound_drops_the_largest_categories_and_says_so():
    big = {**REPORT, "registry": {"added": {f"r{i}": "v" * 100 for i in range(2000)}}}

    kept = bound(big, 64 * 1024)

    assert len(json.dumps(kept).encode()) <= 64 * 1024
    assert "registry" not in kept
    assert kept["cut"]["categories"] == ["registry"]
    assert kept["catalog"] == REPORT["catalog"]
    assert kept["unknown"] == ["actions"]


# -- in process: api.upgrade(changes=...) ---------------------------------------

BASE = "collective.upgradeapi.testing:base"
RECORD = "collective.upgradeapi.testing.greeting"


@pytest.mark.parametrize(
    ("dry_run", "changes", "recorded"),
    [
        (True, None, True),
        (True, False, False),
        (False, None, False),
        (False, True, True),
    ],
)
def test_api_records_changes_as_asked(
    site, rewind, snapshot, dry_run, changes, recorded
):
    from collective.upgradeapi import api
    from collective.upgradeapi.engine.selection import Selection

    rewind({BASE: "1000"})

    result = api.upgrade(
        site, Selection(profiles=(BASE,)), dry_run=dry_run, changes=changes, user="test"
    )

    assert result.ok
    if not recorded:
        assert result.changes is None
        assert all(step.changes is None for step in result.steps)
        assert not result.report.splitlines()[-1].startswith("Changes:")
        return
    # The last step re-imports the profile's registry.xml.
    assert result.steps[-1].changes["import_steps"] == {BASE: ["plone.app.registry"]}
    assert result.changes["versions"] == {BASE: ["1000", "1003"]}
    assert result.report.splitlines()[-1].startswith("Changes: 1 profile version moved")
    assert snapshot()["versions"][BASE] == (("1000",) if dry_run else ("1003",))


# -- in process: a part is read again when one of its objects was written -------


def _recorded(site, *works):
    """Run each of ``works`` as a recorded step, all in one transaction; the
    changes of each step."""
    from collective.upgradeapi.engine import changes
    from types import SimpleNamespace

    results = [SimpleNamespace() for _ in works]
    with changes.recording(changes.Recorder(site)):
        for result, work in zip(results, works, strict=True):
            with changes.step(result):
                work()
    transaction.abort()
    return [result.changes for result in results]


def test_each_write_is_seen_across_savepoints_and_rollbacks(site):
    fti = site.portal_types.Document
    title = fti.title
    taken = []

    def write(value, before=None, after=None):
        def work():
            if before:
                taken.append(transaction.savepoint(optimistic=True))
            fti.title = value
            if after:
                transaction.savepoint(optimistic=True)

        return work

    found = _recorded(
        site,
        write("One"),
        write("Two", after=True),  # written again, then its flag cleared
        write("Three", before=True),
        lambda: None,
        lambda: taken[0].rollback(),  # back to "Two", without a flag
        lambda: site.manage_permission("View", ["Manager"], acquire=0),
    )

    titles = [
        step.get("types", {}).get("changed", {}).get("Document", {}) for step in found
    ]
    assert titles[:5] == [
        {"changed": {"title": [title, "One"]}},
        {"changed": {"title": ["One", "Two"]}},
        {"changed": {"title": ["Two", "Three"]}},
        {},
        {"changed": {"title": ["Three", "Two"]}},
    ]
    assert [bool(step.get("role_map")) for step in found] == [False] * 5 + [True]
    assert found[-1]["role_map"]["View"]["acquire"] == [True, False]
    assert site.portal_types.Document.title == title
