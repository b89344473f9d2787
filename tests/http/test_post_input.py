"""Bad input and missing permissions: a JSON error, and nothing runs."""

from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import LAST
from plone.app.testing import setRoles
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import TEST_USER_PASSWORD

import pytest
import transaction


BASE = "collective.upgradeapi.testing:base"


@pytest.fixture
def pending(rewind, snapshot):
    """A site with pending core and add-on steps; returns its snapshot."""
    rewind({CORE: LAST, BASE: "1000"})
    return snapshot()


BAD_BODIES = [
    ("{not json", "The body is not valid JSON", {}),
    ("[true]", "The body must be a JSON object", {}),
    ('"dry_run"', "The body must be a JSON object", {}),
    ('{"dry_run": "yes"}', "'dry_run' must be true or false", {}),
    ('{"dryRun": 1}', "'dryRun' must be true or false", {}),
    ('{"dry_run": null}', "'dry_run' must be true or false", {}),
    ('{"dry_run": true, "dryRun": false}', "disagree", {}),
    (
        '{"dry_run": true, "force": true}',
        "Unknown key(s): force",
        {"unknown_keys": ["force"]},
    ),
    ('{"profiles": []}', "'profiles' must be a non-empty list", {}),
    ('{"profiles": "some"}', "'profiles' must be a non-empty list", {}),
    ('{"profiles": [1]}', "'profiles' must be a non-empty list", {}),
    ('{"steps": "abc"}', "'steps' must be a non-empty list", {}),
    ('{"steps": [""]}', "'steps' must be a non-empty list", {}),
    ('{"profiles": "all", "steps": ["x"]}', "not both", {}),
    (
        '{"profiles": ["no.such:profile"]}',
        "Unknown profile id(s): no.such:profile",
        {"unknown_profiles": ["no.such:profile"]},
    ),
    (
        '{"profiles": ["plone.app.iterate:default"]}',
        "not installed on this site: plone.app.iterate:default",
        {"not_installed": ["plone.app.iterate:default"]},
    ),
    (
        '{"steps": ["0123456789abcdef"]}',
        "Unknown or not pending step id(s): 0123456789abcdef",
        {"unknown_steps": ["0123456789abcdef"]},
    ),
]


@pytest.mark.parametrize("body, message, details", BAD_BODIES)
def test_bad_body(api, pending, snapshot, body, message, details):
    response = api.post(
        "/@upgrade", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["type"] == "BadRequest"
    assert message in data["message"]
    for key, value in details.items():
        assert data[key] == value
    assert snapshot() == pending


def test_bad_request_example(api, pending, snapshot, example):
    response = api.post("/@upgrade", json={"dry_run": "yes", "profiles": "all"})

    example("upgrade_post_bad_request", response)
    assert response.status_code == 400
    assert snapshot() == pending


def test_unknown_profile_example(api, pending, snapshot, example):
    response = api.post("/@upgrade", json={"profiles": ["my.addon:default", BASE]})

    example("upgrade_post_unknown_profile", response)
    assert response.status_code == 400
    assert response.json()["unknown_profiles"] == ["my.addon:default"]
    assert snapshot() == pending


def test_downgraded_profile_is_refused(api, rewind, snapshot, example):
    rewind({BASE: "1005", CORE: LAST})
    before = snapshot()

    response = api.post("/@upgrade", json={"profiles": [CORE, BASE]})

    example("upgrade_post_downgraded", response)
    assert response.status_code == 400
    data = response.json()
    assert data["type"] == "Downgraded"
    assert data["downgraded"] == [BASE]
    assert "newer version than the code knows" in data["message"]
    assert snapshot() == before


def test_all_passes_over_downgraded_profiles(api, rewind, snapshot):
    """Plone's own core add-ons may record a version ahead of their code."""
    rewind({BASE: "1005", CORE: LAST})

    response = api.post("/@upgrade", json={"profiles": "all"})

    assert response.status_code == 200
    assert {p["id"] for p in response.json()["profiles"]} >= {CORE}
    assert BASE not in {p["id"] for p in response.json()["profiles"]}
    assert response.json()["upgraded"] is True
    assert snapshot()["versions"][BASE] == ("1005",)


def test_anonymous_gets_401_json(anon_api, pending, snapshot):
    for method in ("get", "post"):
        response = getattr(anon_api, method)("/@upgrade", json={})

        assert response.status_code == 401
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["type"] == "Unauthorized"
    assert snapshot() == pending


@pytest.fixture
def editor(site):
    """The test user, with a role that may edit but not manage the portal."""
    setRoles(site, TEST_USER_ID, ["Editor", "Site Administrator"])
    transaction.commit()
    return TEST_USER_NAME, TEST_USER_PASSWORD


def test_user_without_manage_portal_is_refused(session_for, editor, pending, snapshot):
    session = session_for(*editor)
    for method in ("get", "post"):
        response = getattr(session, method)("/@upgrade", json={})

        assert response.status_code in (401, 403)
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["type"] in ("Unauthorized", "Forbidden")
    assert snapshot() == pending


def test_our_service_answers_not_plone_restapis(api, pending):
    """The built-in answers neither ``needs_upgrade`` nor 400 for bad input."""
    assert "needs_upgrade" in api.get("/@upgrade").json()
    assert api.post("/@upgrade", json={"dry_run": "no"}).status_code == 400
