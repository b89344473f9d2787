"""The page in German, for a browser that asks for it: the catalogue in
``locales/`` (made with i18ndude), compiled by zope.i18n when Zope starts."""

from playwright.sync_api import expect

import transaction


BASE = "collective.upgradeapi.testing:base"


def test_the_page_speaks_german(open_page, site, upgrades_url, rewind, screenshot):
    # Plone follows the browser's language only when the site allows it
    # (Site Setup, Language: "Use browser language request negotiation").
    registry = site.portal_registry
    registry["plone.available_languages"] = ["en", "de"]
    registry["plone.use_request_negotiation"] = True
    transaction.commit()
    rewind({BASE: "1000"})
    page = open_page(locale="de-DE")

    page.goto(upgrades_url)

    expect(page.locator("h1.documentFirstHeading")).to_have_text("Aktualisierungen")
    expect(page.get_by_role("button", name="Probelauf")).to_be_visible()
    expect(page.get_by_role("button", name="Aktualisieren", exact=True)).to_be_visible()
    expect(page.locator("#upgrade-pending h2")).to_have_text(
        "Ausstehende Aktualisierungen"
    )
    expect(page.locator("#upgrade-pending")).to_contain_text("von 1000 auf 1003")
    page.get_by_role("button", name="Probelauf").click()
    expect(page.locator("#upgrade-run-result")).to_contain_text(
        "nichts wurde behalten (Probelauf)"
    )
    expect(page.locator("#upgrade-run-steps .badge").first).to_have_text("erledigt")
    screenshot(page, "german")


def test_the_page_speaks_english_by_default(page, upgrades_url):
    page.goto(upgrades_url)

    expect(page.locator("h1.documentFirstHeading")).to_have_text("Upgrades")
