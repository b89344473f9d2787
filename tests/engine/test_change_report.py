"""The change report's plain-data functions: its summary line and its bound."""

from collective.upgradeapi.engine.changeset import bound
from collective.upgradeapi.engine.changeset import short
from collective.upgradeapi.engine.changeset import summary
from collective.upgradeapi.engine.changeset import VALUE_LIMIT

import json


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
