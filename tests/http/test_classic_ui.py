"""The Classic UI doors over HTTP (every Plone version): the upgrade page's
forms, Plone's ``@@plone-upgrade`` and the Add-ons control panel's
``@@upgrade_products``, routed through the engine.

A forged request is the one a page on another web site makes a logged-in
browser send: Plone's ``__ac`` cookie, a form body, no token, another Origin.
Every refusal leaves the database as it was.
"""

from collective.upgradeapi.testing.status import log_in
from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import FS
from collective.upgradeapi.testing.versions import LAST
from plone.app.testing import SITE_OWNER_NAME

import html
import pytest
import requests


BASE = "collective.upgradeapi.testing:base"
GOOD = "collective.upgradeapi.doortest"
PAGE = "/@@upgrade-controlpanel"
HTML = {"Accept": "text/html"}


@pytest.fixture
def cookie(site):
    """A browser's session: logged in through Plone's login form (``__ac``)."""
    session = requests.Session()
    session.headers.update(HTML)
    log_in(session, site.absolute_url())
    session.base = site.absolute_url()
    yield session
    session.close()


def post(session, path, data, **kwargs):
    return session.post(
        f"{session.base}{path}", data=data, allow_redirects=False, **kwargs
    )


def history(api):
    return api.get("/@upgrade/history").json()["items"]


FORGED = {"Origin": "https://attacker.example", "Referer": "https://attacker.example/"}


@pytest.mark.parametrize(
    "path, data",
    [
        ("/@@plone-upgrade", {"form.submitted": "1"}),
        (PAGE, {"profiles:list": CORE, "form.buttons.upgrade": "1"}),
        ("/@@upgrade_products", {"prefs_reinstallProducts:list": GOOD}),
    ],
)
def test_forged_cross_site_post_is_refused(
    cookie, api, addons, rewind, snapshot, path, data
):
    """Plone's own @@plone-upgrade turned off plone.protect: this request
    upgraded a site's core. Now nothing runs."""
    rewind({CORE: LAST})
    before = snapshot()

    response = post(cookie, path, data, headers=FORGED)

    assert response.status_code == 403, response.text
    assert "cross-site request forgery" in response.text
    assert snapshot() == before
    assert history(api) == []


def test_plone_upgrade_get_leads_to_the_page(cookie, rewind, snapshot):
    rewind({CORE: LAST})
    before = snapshot()

    response = cookie.get(
        f"{cookie.base}/@@plone-upgrade?form.submitted=1", allow_redirects=False
    )

    assert response.status_code == 302
    assert response.headers["Location"] == f"{cookie.base}{PAGE}"
    assert snapshot() == before


def test_plone_upgrade_form_runs_through_the_engine(cookie, api, rewind, token):
    rewind({CORE: LAST})

    response = post(
        cookie,
        "/@@plone-upgrade",
        {"form.submitted": "1", "_authenticator": token},
    )

    assert response.status_code == 303, response.text
    assert response.headers["Location"].endswith(f"{PAGE}?run=1")
    (run,) = history(api)
    assert (run["result"], run["committed"], run["dry_run"]) == (
        "success",
        True,
        False,
    )
    assert run["selection"]["profiles"] is None  # Plone's core upgrade
    versions = api.get("/@upgrade").json()["versions"]
    assert versions == {"fs": FS, "instance": FS}


def test_plone_upgrade_dry_run_keeps_nothing(cookie, api, rewind, token, snapshot):
    rewind({CORE: LAST})
    before = snapshot()

    response = post(
        cookie,
        "/@@plone-upgrade",
        {"form.submitted": "1", "dry_run": "on", "_authenticator": token},
    )

    assert response.status_code == 303, response.text
    assert snapshot() == before
    (run,) = history(api)
    assert (run["result"], run["dry_run"]) == ("success", True)


def test_addons_panel_upgrade_runs_through_the_engine(
    cookie, api, addons, token, snapshot
):
    before = snapshot()

    response = post(
        cookie,
        "/@@upgrade_products",
        {"prefs_reinstallProducts:list": GOOD, "_authenticator": token},
    )

    assert response.status_code == 303, response.text
    assert response.headers["Location"].endswith(f"{PAGE}?run=1")
    after = snapshot()
    assert after["versions"][f"{GOOD}:default"] == ("3002",)
    assert after["markers"] == [*before["markers"], "good-3001", "good-3002"]
    (run,) = history(api)
    assert run["selection"]["profiles"] == [f"{GOOD}:default"]
    assert run["user"] == SITE_OWNER_NAME


def test_addons_panel_upgrade_get_changes_nothing(cookie, api, addons, snapshot):
    """Plone's view upgraded on a GET too."""
    before = snapshot()

    response = cookie.get(
        f"{cookie.base}/@@upgrade_products?prefs_reinstallProducts:list={GOOD}",
        allow_redirects=False,
    )

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/prefs_install_products_form")
    assert snapshot() == before
    assert history(api) == []


def test_addons_panel_unknown_addon(cookie, api, addons, token, snapshot):
    before = snapshot()

    response = post(
        cookie,
        "/@@upgrade_products",
        {"prefs_reinstallProducts:list": "no.such.addon", "_authenticator": token},
    )

    assert response.status_code == 303
    assert response.headers["Location"].endswith("/prefs_install_products_form")
    assert snapshot() == before
    assert history(api) == []


# -- the page's forms -----------------------------------------------------


def page_post(cookie, token, **data):
    return post(cookie, PAGE, {"_authenticator": token, **data})


def test_page_runs_single_steps(cookie, api, rewind, token, snapshot):
    rewind({BASE: "1000"})
    step = api.get("/@upgrade").json()["profiles"][0]["steps"][0]["id"]

    response = page_post(
        cookie, token, **{"steps:list": step, "form.buttons.upgrade": "1"}
    )

    assert response.status_code == 303, response.text
    (run,) = history(api)
    assert run["selection"]["steps"] == [step]
    assert [s["status"] for s in run["steps"]] == ["done"]


@pytest.mark.parametrize(
    "data, status, text",
    [
        ({"profiles:list": BASE}, 400, "No button was pressed"),
        ({"form.buttons.upgrade": "1"}, 400, "Choose at least one profile or step"),
        (
            {"profiles:list": BASE, "commit": "nope", "form.buttons.upgrade": "1"},
            400,
            "Unknown commit mode",
        ),
        (
            {"profiles:list": BASE, "form.buttons.mark_done": "1"},
            400,
            "Tick the confirmation",
        ),
        ({"profiles:list": "no.such:profile", "form.buttons.dry_run": "1"}, 400, ""),
        ({"form.buttons.cancel": "1"}, 404, ""),
        ({"form.buttons.break_lock": "1"}, 404, ""),
        ({"form.buttons.stamp": "1", "confirm": "1"}, 400, "Choose the profile"),
    ],
)
def test_page_refusals_write_nothing(
    cookie, api, rewind, token, snapshot, data, status, text
):
    rewind({BASE: "1000"})
    before = snapshot()

    response = page_post(cookie, token, **data)

    assert response.status_code == status, response.text
    assert "Nothing was done." in response.text
    assert text in response.text
    assert snapshot() == before
    assert history(api) == []


def test_page_refuses_while_locked(cookie, api, held, rewind, token, snapshot):
    rewind({BASE: "1000"})
    held()
    before = snapshot()

    response = page_post(
        cookie, token, **{"profiles:list": BASE, "form.buttons.upgrade": "1"}
    )

    assert response.status_code == 409, response.text
    assert "is running on this site" in response.text
    assert "This page shows the run's progress." in html.unescape(response.text)
    assert snapshot() == before
    assert len(history(api)) == 1  # only the run that holds the lock


def test_mark_done_with_confirmation(cookie, api, rewind, token, snapshot):
    rewind({BASE: "1000"})
    before = snapshot()

    response = page_post(
        cookie,
        token,
        **{"profiles:list": BASE, "confirm": "1", "form.buttons.mark_done": "1"},
    )

    assert response.status_code == 303, response.text
    after = snapshot()
    assert after["versions"][BASE] == ("1003",)
    assert after["markers"] == before["markers"]  # no step ran
    (run,) = history(api)
    assert {s["status"] for s in run["steps"]} == {"marked_done"}


def test_mark_done_needs_its_permission(site, api, rewind, snapshot):
    """A user who may manage the portal, but not mark steps done."""
    from plone.app.testing import setRoles
    from plone.app.testing import TEST_USER_ID
    from plone.app.testing import TEST_USER_NAME
    from plone.app.testing import TEST_USER_PASSWORD

    import transaction

    site.manage_permission("Manage portal", ["Manager", "Site Administrator"])
    setRoles(site, TEST_USER_ID, ["Site Administrator"])
    transaction.commit()
    rewind({BASE: "1000"})
    before = snapshot()
    with requests.Session() as session:
        session.auth = (TEST_USER_NAME, TEST_USER_PASSWORD)
        page = session.get(f"{site.absolute_url()}{PAGE}", allow_redirects=False)
        assert page.status_code == 200
        assert "form.buttons.mark_done" not in page.text
        response = session.post(
            f"{site.absolute_url()}{PAGE}",
            data={
                "profiles:list": BASE,
                "confirm": "1",
                "form.buttons.mark_done": "1",
            },
            allow_redirects=False,
        )

    assert response.status_code == 403, (response.headers, response.text)
    assert "Nothing was done." in response.text
    assert snapshot() == before
    assert history(api) == []


def test_unknown_run(cookie):
    for run in ("999", "abc", "1" * 40):
        response = cookie.get(f"{cookie.base}{PAGE}?run={run}")
        assert response.status_code == 404, run
        assert "There is no upgrade run" in response.text


def test_page_get_changes_nothing(cookie, api, rewind, snapshot):
    """A GET with a run form's fields runs nothing."""
    rewind({BASE: "1000"})
    before = snapshot()

    response = cookie.get(
        f"{cookie.base}{PAGE}",
        params={"profiles:list": BASE, "form.buttons.upgrade": "1"},
    )

    assert response.status_code == 200
    assert snapshot() == before
    assert history(api) == []
