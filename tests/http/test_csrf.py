"""Cross-site request forgery: a cookie-authenticated unsafe request to
``@upgrade`` (or ``@addons/<id>/upgrade``) needs ``Content-Type:
application/json`` or a plone.protect token; clients with an
``Authorization`` header (basic auth, JWT) need neither.

The cookie is Plone's own ``__ac``, from a real login through the login form.
"""

from collective.upgradeapi.testing.status import log_in
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

import json
import pytest
import requests


GOOD = "collective.upgradeapi.doortest"
GOOD_PROFILE = f"{GOOD}:default"


BASE = "collective.upgradeapi.testing:base"
BODY = json.dumps({"profiles": [BASE]})


@pytest.fixture
def cookie(site):
    """A session logged in through Plone's login form: an ``__ac`` cookie,
    no ``Authorization`` header."""
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    log_in(session, site.absolute_url())
    session.base = site.absolute_url()
    yield session
    session.close()


def post(session, path, body=BODY, content_type="text/plain", headers=None):
    headers = {"Content-Type": content_type, **(headers or {})}
    return session.post(f"{session.base}{path}", data=body, headers=headers)


@pytest.fixture
def pending(rewind, snapshot):
    """The base test profile is pending; returns the snapshot before."""
    rewind({BASE: "1000"})
    return snapshot()


def assert_nothing_ran(api, snapshot, before):
    assert snapshot() == before
    assert api.get("/@upgrade/history").json()["items_total"] == 0


def assert_ran(response, snapshot):
    assert response.status_code == 200, response.text
    assert response.json()["committed"] is True
    assert snapshot()["versions"][BASE] == ("1003",)


def test_cookie_with_text_plain_is_refused(api, cookie, pending, snapshot, example):
    """What a cross-site page can send without a preflight: refused."""
    response = post(cookie, "/@upgrade")

    example("csrf_refused", response)
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["type"] == "Forbidden"
    assert "cross-site request forgery" in data["message"]
    assert "Content-Type: application/json" in data["message"]
    assert_nothing_ran(api, snapshot, pending)


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/x-www-form-urlencoded", "dry_run=false"),
        ("multipart/form-data; boundary=x", "--x--"),
        ("text/plain; charset=utf-8", BODY),
        ("", BODY),
    ],
)
def test_cookie_without_json_is_refused(
    api, cookie, pending, snapshot, content_type, body
):
    response = post(cookie, "/@upgrade", body=body, content_type=content_type)

    assert response.status_code == 403, response.text
    assert_nothing_ran(api, snapshot, pending)


def test_cookie_with_a_wrong_token_is_refused(api, cookie, pending, snapshot):
    response = post(cookie, "/@upgrade", headers={"X-CSRF-TOKEN": "0" * 40})

    assert response.status_code == 403, response.text
    assert_nothing_ran(api, snapshot, pending)


def test_cookie_with_json_runs(cookie, pending, snapshot):
    response = post(cookie, "/@upgrade", content_type="application/json")

    assert_ran(response, snapshot)


def test_cookie_with_json_and_charset_runs(cookie, pending, snapshot):
    response = post(cookie, "/@upgrade", content_type="application/json; charset=utf-8")

    assert_ran(response, snapshot)


def test_cookie_with_a_token_runs(cookie, token, pending, snapshot):
    response = post(cookie, "/@upgrade", headers={"X-CSRF-TOKEN": token})

    assert_ran(response, snapshot)


def test_basic_auth_with_text_plain_runs(api, pending, snapshot):
    response = api.post("/@upgrade", data=BODY, headers={"Content-Type": "text/plain"})

    assert_ran(response, snapshot)


def test_jwt_with_text_plain_runs(api, anon_api, pending, snapshot):
    login = anon_api.post(
        "/@login", json={"login": SITE_OWNER_NAME, "password": SITE_OWNER_PASSWORD}
    )
    assert login.status_code == 200, login.text
    headers = {
        "Authorization": f"Bearer {login.json()['token']}",
        "Content-Type": "text/plain",
    }

    response = anon_api.post("/@upgrade", data=BODY, headers=headers)

    assert_ran(response, snapshot)


def test_cookie_reads_need_nothing(cookie):
    response = cookie.get(f"{cookie.base}/@upgrade/status")

    assert response.status_code == 200, response.text


def test_cookie_delete_lock_without_json_is_refused(
    api,
    cookie,
    held,
    snapshot,
):
    held()
    before = snapshot()
    lock = api.get("/@upgrade/lock").json()["lock"]

    response = cookie.delete(f"{cookie.base}/@upgrade/lock?force=true")

    assert response.status_code == 403, response.text
    assert api.get("/@upgrade/lock").json()["lock"] == lock
    assert snapshot() == before


def test_cookie_addons_upgrade_without_json_is_refused(
    api,
    cookie,
    addons,
    snapshot,
):
    before = snapshot()

    response = post(cookie, f"/@addons/{GOOD}/upgrade", body="")

    assert response.status_code == 403, response.text
    assert response.json()["type"] == "Forbidden"
    assert_nothing_ran(api, snapshot, before)


def test_cookie_addons_upgrade_with_json_runs(cookie, addons, snapshot):
    response = post(
        cookie, f"/@addons/{GOOD}/upgrade", body="", content_type="application/json"
    )

    assert response.status_code == 204, response.text
    assert snapshot()["versions"][GOOD_PROFILE] == ("3002",)


# -- what authenticated the request, not which headers it has -------------------

#: ``Authorization`` headers that authenticate no one.
FORGED = {"bogus-basic": "Basic Ym9ndXM6Ym9ndXM=", "garbage-bearer": "Bearer garbage"}


@pytest.mark.parametrize("authorization", FORGED.values(), ids=FORGED)
def test_cookie_with_a_forged_authorization_is_refused(
    api, cookie, pending, snapshot, example, authorization
):
    """An extra header that authenticates no one leaves a cookie session a
    cookie session."""
    response = post(cookie, "/@upgrade", headers={"Authorization": authorization})

    if authorization == FORGED["bogus-basic"]:
        example("csrf_forged_authorization", response)
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "Forbidden"
    assert "does not count" in response.json()["message"]
    assert_nothing_ran(api, snapshot, pending)


@pytest.fixture
def member(site, sync):
    """A Member of the site: ``(user id, password)``, committed."""
    import transaction

    sync()
    site.acl_users.userFolderAddUser("member", "member-secret", ["Member"], [])
    transaction.commit()
    return "member", "member-secret"


def test_cookie_with_another_users_authorization_is_refused(
    api, cookie, member, pending, snapshot
):
    """A header that authenticates a user, but not the one the cookie did."""
    response = post(cookie, "/@upgrade", headers={"Authorization": _basic(*member)})

    assert response.status_code == 403, response.text
    assert_nothing_ran(api, snapshot, pending)


def test_cookie_with_its_own_users_basic_auth_runs(cookie, pending, snapshot):
    """The header authenticates the user: no cookie needed, so none counts."""
    owner = _basic(SITE_OWNER_NAME, SITE_OWNER_PASSWORD)

    response = post(cookie, "/@upgrade", headers={"Authorization": owner})

    assert_ran(response, snapshot)


def _basic(user, password):
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("authorization", FORGED.values(), ids=FORGED)
@pytest.mark.parametrize("path", ["/@upgrade/run", "/@upgrade/lock?force=true"])
def test_cookie_delete_with_a_forged_authorization_is_refused(
    api, cookie, held, snapshot, path, authorization
):
    held()
    before = snapshot()
    lock = api.get("/@upgrade/lock").json()["lock"]

    response = cookie.delete(
        f"{cookie.base}{path}", headers={"Authorization": authorization}
    )

    assert response.status_code == 403, response.text
    assert response.json()["type"] == "Forbidden"
    after = api.get("/@upgrade/lock").json()["lock"]
    assert after == lock
    assert after["cancel_requested"] is None
    assert snapshot() == before
