"""The change report: what each step of a run changed, over HTTP.

The ``changes`` test profile has one real step per part of a site the report
covers (see ``collective.upgradeapi.testing.changes``); each test installs
it, rewinds it, and runs it.
"""

from collective.upgradeapi.testing import changes as steps
from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import OLD
from plone.app.testing import SITE_OWNER_NAME
from plone.registry.interfaces import IRegistry
from plone.testing import zope
from zope.component import getUtility

import pytest
import transaction


PROFILE = steps.PROFILE
IMPORTED_RECORD = "collective.upgradeapi.testing.changes.imported"
OLD_PATH = f"/plone/{steps.OLD_DOCUMENT}"
NEW_PATH = f"/plone/{steps.NEW_DOCUMENT}"

#: Step title -> the categories its report holds.
EXPECTED = {
    "Changes: content": {"content", "catalog"},
    "Changes: catalog": {"catalog"},
    "Changes: types": {"types"},
    "Changes: workflow": {"workflows"},
    "Changes: role map": {"role_map"},
    "Changes: actions": {"actions"},
    "Changes: registry": {"registry"},
    "Changes: re-import the registry": {"registry", "import_steps"},
}


@pytest.fixture
def changing(site, functional, sync):
    """The ``changes`` profile installed and rewound, a document for its
    content step to delete; returns a function that reads what its steps
    change, from the database."""
    setup = site.portal_setup
    zope.login(functional["app"]["acl_users"], SITE_OWNER_NAME)
    try:
        setup.runAllImportStepsFromProfile(f"profile-{PROFILE}")
        site.invokeFactory("Document", steps.OLD_DOCUMENT, title="Old")
    finally:
        zope.logout()
    # So that the re-import of registry.xml adds it again.
    del getUtility(IRegistry).records[IMPORTED_RECORD]
    setup.setLastVersionForProfile(PROFILE, steps.REWIND)
    transaction.commit()

    def read():
        sync()
        registry = getUtility(IRegistry)
        catalog = site.portal_catalog
        return {
            "version": setup.getLastVersionForProfile(PROFILE),
            "records": {
                # Not registry.get(): it caches values per request.
                name: registry.records[name].value if name in registry else None
                for name in (steps.ADDED_RECORD, IMPORTED_RECORD, steps.CHANGED_RECORD)
            },
            "index": steps.INDEX in catalog.indexes(),
            "column": steps.INDEX in catalog.schema(),
            "behaviors": tuple(site.portal_types.Document.behaviors),
            "chain": tuple(site.portal_workflow.getChainForPortalType("Document")),
            "roles": sorted(site.rolesOfPermission(steps.PERMISSION), key=str),
            "action": "upgradeapi_changes" in site.portal_actions.user.objectIds(),
            "documents": sorted(
                name for name in site.objectIds() if name.startswith("changes-")
            ),
        }

    return read


def _post(api, **body):
    return api.post("/@upgrade", json={"profiles": [PROFILE], **body})


def _by_title(data):
    return {step["title"]: step["changes"] for step in data["steps"]}


def test_dry_run_reports_what_each_step_changes(api, changing, example):
    before = changing()

    response = _post(api, dry_run=True)

    example("upgrade_post_dry_run_changes", response)
    assert response.status_code == 200, response.text
    by_title = _by_title(response.json())
    assert {title: set(found) for title, found in by_title.items()} == EXPECTED
    content = by_title["Changes: content"]["content"]
    assert content["added"]["Document"] == {"count": 1, "paths": [NEW_PATH]}
    assert content["modified"]["Document"] == {"count": 1, "paths": [NEW_PATH]}
    assert content["removed"]["Document"] == {"count": 1, "paths": [OLD_PATH]}
    assert by_title["Changes: catalog"]["catalog"] == {
        "indexes": {"added": [steps.INDEX]},
        "metadata": {"added": [steps.INDEX]},
        "reindexed": {"Document": {"count": 1, "paths": [NEW_PATH]}},
        # Plone's catalog counts its writes: one reindexed document.
        "writes": 1,
    }
    # The new document, the site (its listing changed), the old one removed.
    assert by_title["Changes: content"]["catalog"]["writes"] == 3
    behaviors = by_title["Changes: types"]["types"]["changed"]["Document"]
    added = steps.BEHAVIOR not in before["behaviors"]
    assert behaviors == {
        "changed": {"behaviors": {"added" if added else "removed": [steps.BEHAVIOR]}}
    }
    chains = by_title["Changes: workflow"]["workflows"]["chains"]["changed"]
    assert chains == {"Document": [list(before["chain"]), ["one_state_workflow"]]}
    permission = by_title["Changes: role map"]["role_map"][steps.PERMISSION]
    assert permission["acquire"] == [True, False]
    assert by_title["Changes: actions"]["actions"] == {
        "added": ["/user/upgradeapi_changes"]
    }
    assert by_title["Changes: registry"]["registry"] == {
        "added": {steps.ADDED_RECORD: "added"},
        "changed": {
            steps.CHANGED_RECORD: [
                before["records"][steps.CHANGED_RECORD],
                "Changed by an upgrade step",
            ]
        },
    }
    reimport = by_title["Changes: re-import the registry"]
    assert reimport["import_steps"] == {PROFILE: ["plone.app.registry"]}
    assert reimport["registry"] == {"added": {IMPORTED_RECORD: "imported"}}
    # A dry run writes nothing, whatever it reports.
    assert changing() == before


def test_dry_run_totals_and_summary(api, changing):
    data = _post(api, dry_run=True).json()

    total = data["changes"]
    assert total["versions"] == {PROFILE: ["1000", "1008"]}
    assert set(total["registry"]["added"]) == {steps.ADDED_RECORD, IMPORTED_RECORD}
    assert total["content"]["removed"]["Document"]["paths"] == [OLD_PATH]
    assert "unknown" not in total
    summary = data["report"].splitlines()[-1]
    assert summary.startswith("Changes: 2 registry records added, 1 registry record")
    assert "1 catalog index added" in summary
    assert "1 object removed (1 Document)" in summary


def test_the_history_keeps_the_report(api, changing, example):
    answer = _post(api, dry_run=True).json()

    response = api.get(f"/@upgrade/history/{answer['run_id']}")

    example("upgrade_history_changes", response)
    entry = response.json()
    assert entry["changes"] == answer["changes"]
    assert [s.get("changes") for s in entry["steps"]] == [
        s["changes"] for s in answer["steps"]
    ]
    # A run without a report keeps none.
    quiet = _post(api, dry_run=True, changes=False).json()
    entry = api.get(f"/@upgrade/history/{quiet['run_id']}").json()
    assert "changes" not in entry
    assert all("changes" not in step for step in entry["steps"])


def test_real_run_reports_what_the_database_then_holds(api, changing):
    before = changing()

    response = _post(api, changes=True)

    assert response.status_code == 200, response.text
    data = response.json()
    assert data["committed"] is True
    total = data["changes"]
    after = changing()
    assert after["version"] == ("1008",)
    assert total["versions"] == {PROFILE: ["1000", "1008"]}
    for name, value in total["registry"]["added"].items():
        assert before["records"][name] is None
        assert after["records"][name] == value
    for name, (old, new) in total["registry"]["changed"].items():
        assert (before["records"][name], after["records"][name]) == (old, new)
    assert not before["index"] and not before["column"]
    assert total["catalog"]["indexes"]["added"] == [steps.INDEX] and after["index"]
    assert total["catalog"]["metadata"]["added"] == [steps.INDEX] and after["column"]
    behaviors = total["types"]["changed"]["Document"]["changed"]["behaviors"]
    assert set(after["behaviors"]) == (
        set(before["behaviors"]) | set(behaviors.get("added", ()))
    ) - set(behaviors.get("removed", ()))
    chain = total["workflows"]["chains"]["changed"]["Document"]
    assert chain == [list(before["chain"]), list(after["chain"])]
    assert not before["action"] and after["action"]
    assert total["actions"]["added"] == ["/user/upgradeapi_changes"]
    removed = set(total["role_map"][steps.PERMISSION]["removed"])
    granted = {r["name"] for r in after["roles"] if r["selected"]}
    was = {r["name"] for r in before["roles"] if r["selected"]}
    assert granted == was - removed == set(steps.ROLES)
    assert set(after["documents"]) == (
        set(before["documents"]) - {steps.OLD_DOCUMENT}
    ) | {steps.NEW_DOCUMENT}


def test_real_run_reports_nothing_unless_asked(api, changing):
    data = _post(api).json()

    assert data["committed"] is True
    assert "changes" not in data
    assert all("changes" not in step for step in data["steps"])
    assert not data["report"].splitlines()[-1].startswith("Changes:")


def test_changes_false_turns_the_dry_run_report_off(api, changing):
    before = changing()

    data = _post(api, dry_run=True, changes=False).json()

    assert data["dry_run"] is True
    assert "changes" not in data
    assert all("changes" not in step for step in data["steps"])
    assert not data["report"].splitlines()[-1].startswith("Changes:")
    assert changing() == before


@pytest.mark.parametrize("value", ["yes", None, 1, [], {}])
def test_bad_changes_values_are_refused(api, changing, value):
    before = changing()

    response = _post(api, changes=value)

    assert response.status_code == 400
    assert response.json()["type"] == "BadRequest"
    assert "'changes' must be true or false" in response.json()["message"]
    assert changing() == before
    assert api.get("/@upgrade/history").json()["items_total"] == 0


def test_core_dry_run_reports_on_a_rewound_site(api, rewind, snapshot):
    rewind({CORE: OLD})
    before = snapshot()

    data = api.post("/@upgrade", json={"dry_run": True}).json()

    assert data["changes"]["versions"][CORE][0] == OLD
    assert data["changes"]["versions"][CORE][1] == data["versions"]["fs"]
    assert all("changes" in step for step in data["steps"])
    assert data["report"].splitlines()[-1].startswith("Changes: ")
    assert snapshot() == before


def test_failed_step_is_unknown_and_nothing_is_written(api, rewind, snapshot):
    broken = "collective.upgradeapi.testing:broken"
    rewind({broken: "3000"})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": [broken], "dry_run": True})

    assert response.status_code == 500
    steps_ = response.json()["steps"]
    assert [step["status"] for step in steps_] == ["done", "failed"]
    assert steps_[0]["changes"] == {}
    assert "registry" in steps_[1]["changes"]["unknown"]
    assert snapshot() == before
