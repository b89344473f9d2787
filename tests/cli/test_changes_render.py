"""``plone_upgrade.changes.render``: a change report as text, per step."""

from pathlib import Path
from plone_upgrade.changes import render

import json
import pytest


EXAMPLE = (
    Path(__file__).parent.parent / "http-examples/upgrade_post_dry_run_changes.resp"
)

STEPS = [
    (
        "Add a record, change another",
        {
            "registry": {
                "added": {"my.record": "blue"},
                "changed": {"plone.site_title": ["Plone site", "Mine"]},
                "removed": {"old.record": [1, 2]},
            }
        },
    ),
    (
        "Catalog and content",
        {
            "catalog": {
                "indexes": {"added": ["my_index"]},
                "metadata": {"removed": ["old_column"]},
                "reindexed": {"Document": {"count": 22, "paths": ["/plone/a"]}},
                "writes": 23,
            },
            "content": {"removed": {"News Item": {"count": 1, "paths": ["/plone/n"]}}},
        },
    ),
    (
        "Types, workflows, roles",
        {
            "types": {
                "added": ["Event"],
                "changed": {
                    "Document": {
                        "changed": {
                            "behaviors": {"added": ["plone.leadimage"]},
                            "title": ["Page", "Document"],
                        }
                    }
                },
            },
            "workflows": {"chains": {"changed": {"Document": [[], ["one_state"]]}}},
            "role_map": {
                "Add portal content": {
                    "removed": ["Contributor"],
                    "acquire": [True, False],
                }
            },
            "versions": {"my.addon:default": ["1000", "1001"]},
            "import_steps": {"my.addon:default": ["plone.app.registry", "typeinfo"]},
        },
    ),
    ("Nothing", {}),
    ("A failed step", {"unknown": ["catalog", "registry"]}),
    ("Not recorded", None),
]


def steps(pairs):
    """Steps as an answer lists them, from ``(title, changes)`` pairs."""
    return [{"title": title, "changes": changes} for title, changes in pairs]


def test_plain_text_grouped_by_step_with_signs():
    text = render(steps(STEPS), color=False)

    assert "\033[" not in text
    assert text.splitlines() == [
        "Add a record, change another",
        "  + registry my.record = blue",
        "  ~ registry plone.site_title: Plone site -> Mine",
        "  - registry old.record = [1, 2]",
        "Catalog and content",
        "  + catalog index my_index",
        "  - catalog column old_column",
        "  ~ 22 Document reindexed: /plone/a and 21 more",
        "  ~ catalog writes: 23",
        "  - 1 News Item removed: /plone/n",
        "Types, workflows, roles",
        "  + type Event",
        "  ~ type Document: behaviors +plone.leadimage, title: Page -> Document",
        '  ~ workflow chain Document: [] -> ["one_state"]',
        "  ~ role map 'Add portal content': -Contributor, acquire: true -> false",
        "  ~ version my.addon:default: 1000 -> 1001",
        "  ~ import steps my.addon:default: plone.app.registry, typeinfo",
        "Nothing",
        "    (no change)",
        "A failed step",
        "  ? not seen: catalog, registry",
    ]


def test_colour_only_when_asked():
    text = render(steps(STEPS[:1]), color=True)

    lines = text.splitlines()
    assert lines[0] == "\033[1mAdd a record, change another\033[0m"
    assert lines[1].startswith("\033[32m  + ") and lines[1].endswith("\033[0m")
    assert lines[2].startswith("\033[33m  ~ ")
    assert lines[3].startswith("\033[31m  - ")


def test_nothing_recorded_renders_nothing():
    assert render(steps([("Not recorded", None)]), color=True) == ""
    assert render([], color=False) == ""


def test_cut_report_says_so():
    text = render(
        steps([("Big", {"cut": {"categories": ["registry"], "message": "x"}})])
    )

    assert text.splitlines()[1] == "  ! cut: registry"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the HTTP example is not recorded")
def test_renders_the_servers_answer():
    """The steps of a recorded dry run (tests/http-examples), as they come."""
    answer = json.loads(EXAMPLE.read_text().split("\n\n", 1)[1])

    text = render(answer["steps"], color=False)

    assert text.count("\n  ") >= len(answer["steps"])
    assert "  + catalog index upgradeapi_changes" in text
    assert "  ~ registry plone.site_title: " in text
    assert "  + import steps" not in text
    assert "  ~ import steps collective.upgradeapi.testing:changes: " in text
