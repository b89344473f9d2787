"""Where site managers already click: Site Setup's "outdated" notice, the
Add-ons control panel's Upgrade button, and the optional Site Setup link."""

from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import LAST
from playwright.sync_api import expect
from plone.app.testing import SITE_OWNER_NAME

import transaction


GOOD = "collective.upgradeapi.doortest"


def test_site_setup_notice_leads_to_the_page(page, site, upgrades_url, rewind):
    rewind({CORE: LAST})
    page.goto(f"{site.absolute_url()}/@@overview-controlpanel")

    page.get_by_role("link", name="continue with the upgrade").click()

    expect(page).to_have_url(upgrades_url)
    expect(page.locator("fieldset.upgrade-profile").first).to_contain_text(CORE)


def test_addons_panel_upgrade_button_runs_through_the_engine(
    page, site, upgrades_url, addons, snapshot, api, screenshot
):
    before = snapshot()
    page.goto(f"{site.absolute_url()}/prefs_install_products_form")

    page.get_by_role("button", name=f"Upgrade {GOOD}").click()

    expect(page).to_have_url(f"{upgrades_url}?run=1")
    expect(page.locator("#upgrade-run-result")).to_contain_text(
        "Every step ran and was committed."
    )
    assert snapshot()["versions"][f"{GOOD}:default"] == ("3002",)
    assert snapshot()["markers"] == [*before["markers"], "good-3001", "good-3002"]
    (run,) = api.get("/@upgrade/history").json()["items"]
    assert (run["user"], run["selection"]["profiles"]) == (
        SITE_OWNER_NAME,
        [f"{GOOD}:default"],
    )


def test_addons_panel_upgrade_button_while_locked(
    page, site, addons, held, snapshot, api
):
    page.goto(f"{site.absolute_url()}/prefs_install_products_form")
    held()
    before = snapshot()

    page.get_by_role("button", name=f"Upgrade {GOOD}").click()

    expect(page.locator("body")).to_contain_text("holds this site's upgrade lock")
    assert snapshot() == before
    assert len(api.get("/@upgrade/history").json()["items"]) == 1


def test_site_setup_link_with_the_profile(page, site, upgrades_url):
    from plone.app.testing import applyProfile

    applyProfile(site, "collective.upgradeapi:default")
    transaction.commit()
    page.goto(f"{site.absolute_url()}/@@overview-controlpanel")

    page.get_by_role("link", name="Upgrades").click()

    expect(page).to_have_url(upgrades_url)


def test_on_a_volto_site_the_page_works_the_same(page, site, upgrades_url, rewind, api):
    """At the backend's URL; Volto's own Upgrade panel keeps its service."""
    from plone.app.testing import applyProfile

    applyProfile(site, "plone.volto:default")
    transaction.commit()
    rewind({"collective.upgradeapi.testing:base": "1000"})
    page.goto(upgrades_url)

    page.get_by_role("button", name="Dry run").click()

    expect(page.locator("#upgrade-run-result")).to_contain_text(
        "nothing was kept (dry run)"
    )
    assert api.get("/@upgrade").json()["needs_upgrade"] is True
