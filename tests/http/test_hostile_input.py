"""Hostile input: never a real run that was not asked for, never a 500.

Every request here is refused with a 4xx JSON answer that says what is wrong,
and the database is unchanged afterwards.
"""

import pytest


BASE = "collective.upgradeapi.testing:base"


@pytest.fixture
def pending(rewind, snapshot):
    """A site with pending add-on steps; returns its snapshot."""
    rewind({BASE: "1000"})
    return snapshot()


def assert_refused(response, status, text=None):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert "traceback" not in data
    if text is not None:
        assert text in data["message"], data["message"]
    return data


@pytest.mark.parametrize(
    "query",
    ["dry_run=true", "dryRun=1", "profiles=all", "dry_run=true&steps=x", "x"],
)
def test_query_string_on_post_is_refused(api, pending, snapshot, query):
    """``POST @upgrade?dry_run=true`` with no body must not run for real."""
    response = api.post(f"/@upgrade?{query}")

    data = assert_refused(response, 400, "takes no query-string")
    assert data["unknown_parameters"] == sorted(
        {p.split("=")[0] for p in query.split("&")}
    )
    assert snapshot() == pending


def test_query_string_example(api, pending, snapshot, example):
    response = api.post("/@upgrade?dry_run=true")

    example("upgrade_post_query_string", response)
    assert_refused(response, 400)
    assert snapshot() == pending


@pytest.mark.parametrize(
    "body",
    [
        '{"dry_run": true, "profiles": "all", "dry_run": false}',
        '{"profiles": ["a"], "profiles": "all"}',
        '{"dry_run": true, "dryRun": true, "dryRun": false}',
    ],
)
def test_duplicate_keys_are_refused(api, pending, snapshot, body):
    response = api.post(
        "/@upgrade", data=body, headers={"Content-Type": "application/json"}
    )

    data = assert_refused(response, 400, "is given twice")
    assert len(data["duplicate_keys"]) == 1
    assert snapshot() == pending


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_deeply_nested_body_is_400(api, pending, snapshot, content_type):
    body = "[" * 100_000 + "]" * 100_000

    response = api.post("/@upgrade", data=body, headers={"Content-Type": content_type})

    assert_refused(response, 400, "nested too deeply")
    assert snapshot() == pending


def test_deeply_nested_body_to_delete_is_400(api, pending, snapshot):
    body = "[" * 100_000 + "]" * 100_000

    response = api.delete(
        "/@upgrade/run", data=body, headers={"Content-Type": "application/json"}
    )

    assert_refused(response, 400, "nested too deeply")
    assert snapshot() == pending


def test_deeply_nested_body_elsewhere_is_left_to_plone_rest(anon_api):
    """Other requests get plone.rest's answer, as without this package."""
    body = "[" * 100_000 + "]" * 100_000

    response = anon_api.post(
        "/@login", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 500, response.text
    assert response.json()["type"] == "RecursionError"


def test_echo_of_input_is_bounded(api, pending, snapshot):
    huge = "x" * 5_000_000
    many = [f"no.such:profile{i}" for i in range(1000)]

    first = api.post("/@upgrade", json={"profiles": [huge]})
    second = api.post("/@upgrade", json={"profiles": many})

    assert_refused(first, 400, "Unknown profile id(s)")
    assert len(first.content) < 2_000
    data = assert_refused(second, 400, "Unknown profile id(s)")
    assert len(data["unknown_profiles"]) == 21
    assert data["unknown_profiles"][-1] == "... and 980 more"
    assert len(second.content) < 4_000
    assert snapshot() == pending


@pytest.mark.parametrize(
    "path, status",
    [
        ("/@upgrade/history/²", 404),
        ("/@upgrade/history/" + "9" * 5000, 404),
        ("/@upgrade/history/-1", 404),
        ("/@upgrade/history/1.0", 404),
    ],
)
def test_odd_run_ids_are_404(api, path, status):
    assert_refused(api.get(path), status, "There is no upgrade run")


@pytest.mark.parametrize(
    "path", ["/@upgrade/history", "/@upgrade/status", "/@upgrade/lock", "/@upgrade/run"]
)
def test_post_on_a_sub_path_is_405(api, pending, snapshot, path):
    response = api.post(path, json={})
    data = assert_refused(response, 405, "POST is not allowed")
    assert data["type"] == "MethodNotAllowed"
    assert "POST" not in response.headers["Allow"]
    assert snapshot() == pending


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_sub_path_is_404_whatever_the_method(api, pending, snapshot, method):
    response = getattr(api, method)("/@upgrade/x", json={})
    assert assert_refused(response, 404, "There is no @upgrade/x")["type"] == "NotFound"
    assert snapshot() == pending


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("get", "/@upgrade/run", "DELETE"),
        ("delete", "/@upgrade/status", "GET"),
        ("delete", "/@upgrade/history", "GET"),
        ("delete", "/@upgrade", "GET, POST"),
    ],
)
def test_a_method_a_sub_path_does_not_answer_is_405(
    api, pending, snapshot, method, path, allow
):
    response = getattr(api, method)(path)
    assert assert_refused(response, 405, "is not allowed")["allow"] == allow.split(", ")
    assert response.headers["Allow"] == allow
    assert snapshot() == pending


def test_profile_prefix_is_accepted(api, pending, snapshot):
    """GenericSetup's ``profile-`` prefix names the same profile."""
    listed = api.get("/@upgrade", params={"profile": f"profile-{BASE}"})
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["profiles"]] == [BASE]

    response = api.post(
        "/@upgrade", json={"profiles": [f"profile-{BASE}"], "dry_run": True}
    )
    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()["profiles"]] == [BASE]
    assert snapshot() == pending


@pytest.mark.parametrize(
    "params, text",
    [
        ("profile:record.x=1", "Unknown parameter(s): profile:record.x"),
        ("profile=a&profile=b", "Give one profile id"),
        ("force=1", "Unknown parameter(s): force"),
    ],
)
def test_odd_get_parameters_are_refused(api, pending, params, text):
    assert_refused(api.get(f"/@upgrade?{params}"), 400, text)
