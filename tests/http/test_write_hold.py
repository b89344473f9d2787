"""The write hold: while a real run holds the lock, requests that would write
get 503 with ``Retry-After`` and nothing they did is committed; reads go on.

The lock is held by a real run waiting at a test gate (see ``test_doors``).
"""

# The fixtures shared with test_doors are imported: they are arguments here.
# ruff: noqa: F401, F811

from collective.upgradeapi import config
from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.status import log_in
from collective.upgradeapi.testing.status import wait_for_status
from plone.app.testing import login
from plone.app.testing import setRoles
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME

import pytest
import requests
import transaction


pytestmark = pytest.mark.usefixtures("stand_ins")


SLOW = "collective.upgradeapi.testing:slow"
BASE = "collective.upgradeapi.testing:base"
VARIABLE = config.WRITE_HOLD[0]


@pytest.fixture
def document(site):
    """A Document ``doc`` titled "Before", committed."""
    setRoles(site, TEST_USER_ID, ["Manager"])
    login(site, TEST_USER_NAME)
    site.invokeFactory("Document", "doc", title="Before")
    transaction.commit()
    return "/doc"


@pytest.fixture
def hold_on(monkeypatch):
    monkeypatch.setenv(VARIABLE, "on")


def title(site, sync):
    sync()
    return site["doc"].title


def edit(api, path, new_title):
    return api.patch(path, json={"title": new_title})


def test_edit_is_held_during_a_real_run(
    api,
    site,
    sync,
    document,
    hold_on,
    held,
    snapshot,
    example,
):
    held()
    before = snapshot()

    response = edit(api, document, "During the run")

    example("write_hold_edit", response)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "30"
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["type"] == "WriteHeld"
    assert data["retry_after"] == 30
    assert data["lock"]["dry_run"] is False
    assert "Nothing of this request was saved" in data["message"]
    assert title(site, sync) == "Before"
    assert snapshot() == before


def test_reads_go_on_during_the_hold(api, document, hold_on, held):
    held()

    assert api.get(document).status_code == 200
    assert api.get("/@upgrade/status").json()["state"] == "running"
    assert api.get("/@search", params={"SearchableText": "Before"}).status_code == 200


def test_logging_in_goes_on_during_the_hold(
    site,
    anon_api,
    hold_on,
    held,
):
    """Users must be able to log in to read: logins are let through."""
    held()
    with requests.Session() as session:
        cookie = log_in(session, site.absolute_url())  # the form answers 302
    jwt = anon_api.post(
        "/@login", json={"login": SITE_OWNER_NAME, "password": SITE_OWNER_PASSWORD}
    )

    assert cookie
    assert jwt.status_code == 200, jwt.text
    assert jwt.json()["token"]


def test_classic_write_gets_an_html_page(
    api,
    site,
    hold_on,
    held,
    snapshot,
    token,
):
    """A write that is not a REST request: 503, a short HTML page."""
    held()
    before = snapshot()

    response = api.post(
        "/portal_setup/setLastVersionForProfile",
        data={"profile_id": BASE, "version": "1234"},
        headers={"Accept": "text/html", "X-CSRF-TOKEN": token},
    )

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "30"
    assert response.headers["Content-Type"].startswith("text/html")
    assert "writes are held off" in response.text
    assert snapshot() == before


def test_the_run_itself_is_not_held(
    api,
    site,
    sync,
    document,
    hold_on,
    gates,
    held,
    snapshot,
):
    """The run commits, and writes go through again once it has ended."""
    held()
    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)
    # The documented end of the run: its lock is released and the status
    # shows its outcome (while it commits, the state is "committing").
    wait_for_status(api, lambda data: data["state"] == "committed")
    assert snapshot()["markers"][-3:] == ["slow-1", "slow-2", "slow-3"]

    response = edit(api, document, "After the run")

    assert response.status_code == 204, response.text
    assert title(site, sync) == "After the run"


def test_edit_goes_on_during_a_dry_run(
    api,
    site,
    sync,
    document,
    hold_on,
    held,
):
    held(dry_run=True)

    response = edit(api, document, "During a dry run")

    assert response.status_code == 204, response.text
    assert title(site, sync) == "During a dry run"


@pytest.mark.parametrize("value", [None, "off", "maybe"])
def test_edit_goes_on_without_the_setting(
    api,
    site,
    sync,
    document,
    held,
    monkeypatch,
    value,
):
    if value is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, value)
    held()

    response = edit(api, document, "During the run")

    assert response.status_code == 204, response.text
    assert title(site, sync) == "During the run"


def test_setting_from_zope_conf(monkeypatch):
    from App.config import getConfiguration

    configuration = getConfiguration()
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.setattr(
        configuration,
        "product_config",
        {"collective.upgradeapi": {"write-hold": "on"}},
        raising=False,
    )
    assert config.write_hold() is True
    monkeypatch.setenv(VARIABLE, "off")
    assert config.write_hold() is False
    monkeypatch.setenv(VARIABLE, "yes")
    assert config.write_hold() is True
