"""Methods no service of ``@upgrade`` answers: 405 JSON with ``Allow``.

WebDAV's methods and the others, over real HTTP, on every path of the API,
with and without ``Accept: application/json``: a clear refusal, never a 500,
and nothing written. See ``services/guard.py``.
"""

import pytest
import requests


#: The API's paths and the methods each answers.
ALLOWED = {
    "@upgrade": "GET, POST",
    "@upgrade/status": "GET",
    "@upgrade/history": "GET",
    "@upgrade/history/1": "GET",
    "@upgrade/lock": "GET, DELETE",
    "@upgrade/run": "DELETE",
}
OTHER_METHODS = (
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "LOCK",
    "UNLOCK",
    "COPY",
    "MOVE",
    "OPTIONS",
    "PUT",
    "PATCH",
    "HEAD",
)


def assert_not_allowed(response, method, allow):
    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == allow
    assert response.headers["X-Upgrade-Service"] == "collective.upgradeapi"
    assert response.headers["Content-Type"] == "application/json"
    if method == "HEAD":
        return  # no body
    data = response.json()
    assert data["type"] == "MethodNotAllowed"
    assert data["allow"] == allow.split(", ")
    assert data["message"].startswith(f"{method} is not allowed on ")


@pytest.mark.parametrize("path", ALLOWED)
@pytest.mark.parametrize("method", OTHER_METHODS)
def test_other_methods_answer_405(api, database, method, path):
    before = database()

    for accept in ("application/json", None):  # a REST client, a WebDAV client
        response = api.request(method, f"/{path}", headers={"Accept": accept})

        assert_not_allowed(response, method, ALLOWED[path])
    assert database() == before


def test_webdav_refusal_example(api, database, example):
    before = database()

    response = api.request("PROPFIND", "/@upgrade/history", headers={"Depth": "1"})

    example("method_not_allowed", response)
    assert_not_allowed(response, "PROPFIND", "GET")
    assert database() == before


def test_anonymous_gets_405_too(site, database):
    """Refused while the URL is traversed, before anyone is authenticated:
    nothing is called."""
    before = database()

    response = requests.request("PROPFIND", f"{site.absolute_url()}/@upgrade/lock")

    assert_not_allowed(response, "PROPFIND", "GET, DELETE")
    assert database() == before


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_a_service_method_without_json_is_not_acceptable(api, database, method):
    before = database()
    path = "/@upgrade/lock" if method == "DELETE" else "/@upgrade"

    response = api.request(method, path, headers={"Accept": "text/html"})

    assert response.status_code == 406, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["type"] == "NotAcceptable"
    assert "Accept: application/json" in response.json()["message"]
    assert database() == before


def test_an_unknown_sub_path_is_not_found(api, database):
    before = database()

    response = api.request("PROPFIND", "/@upgrade/history/1/more")

    assert response.status_code == 404, response.text
    assert response.json()["type"] == "NotFound"
    assert database() == before


def test_cors_preflight_still_reaches_the_service(api):
    """``OPTIONS`` with ``Origin`` is a CORS preflight: plone.rest answers it
    (without a CORS policy, with no ``Access-Control-*`` header)."""
    response = api.options(
        "/@upgrade",
        headers={
            "Origin": "https://volto.example.org",
            "Access-Control-Request-Method": "POST",
        },
    )

    assert response.status_code == 204, response.text
    assert "Allow" not in response.headers
