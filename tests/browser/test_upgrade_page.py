"""The Classic UI upgrade page in Chromium: listing, dry run, upgrade,
failure, history, live progress and Cancel, no JavaScript, keyboard only.

Runs go through the page's forms and the engine, on the test profiles' real
steps; the slow profile's steps wait for test gates, so a run can be watched
while it goes on.
"""

from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.status import at_step
from collective.upgradeapi.testing.status import wait_for_status
from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import LAST
from playwright.sync_api import expect

import os
import pytest


BASE = "collective.upgradeapi.testing:base"
BROKEN = "collective.upgradeapi.testing:broken"
SLOW = "collective.upgradeapi.testing:slow"
BASE_STEPS = [
    "Base: first step of a group",
    "Base: second step of a group",
    "Base: a single step",
    "Base: re-import the registry",
]


def test_listing_core_first_then_addons(page, upgrades_url, rewind, screenshot):
    rewind({CORE: LAST, BASE: "1000"})

    response = page.goto(upgrades_url)

    assert response.status == 200
    profiles = page.locator("fieldset.upgrade-profile")
    expect(profiles).to_have_count(2)
    expect(profiles.nth(0)).to_contain_text(CORE)
    expect(profiles.nth(0).locator(".badge")).to_have_text("Plone")
    expect(profiles.nth(1)).to_contain_text(BASE)
    expect(profiles.nth(1).locator(".step-title")).to_have_text(BASE_STEPS)
    expect(profiles.nth(1)).to_contain_text("Registered on its own, outside any group.")
    expect(page.locator("input[name='profiles:list']:checked")).to_have_count(2)
    screenshot(page, "upgrade-page")


def test_dry_run_keeps_nothing(page, upgrades_url, rewind, snapshot, screenshot):
    rewind({BASE: "1000"})
    before = snapshot()
    page.goto(upgrades_url)

    page.get_by_role("button", name="Dry run").click()

    expect(page).to_have_url(f"{upgrades_url}?run=1")
    result = page.locator("#upgrade-run-result")
    expect(result).to_contain_text("success")
    expect(result).to_contain_text("nothing was kept (dry run)")
    expect(page.locator("#upgrade-run-steps .step-title")).to_have_text(BASE_STEPS)
    expect(page.locator("#upgrade-run-steps .badge")).to_have_text(["done"] * 4)
    assert snapshot() == before
    screenshot(page, "dry-run-result")


def test_upgrade_commits_and_is_in_the_history(
    page, upgrades_url, rewind, snapshot, screenshot
):
    rewind({CORE: LAST, BASE: "1000"})
    page.goto(upgrades_url)
    page.get_by_label("one profile").check()
    # Only the add-on: its profile stays ticked, core's is unticked.
    page.locator(f"input[value='{CORE}']").uncheck()

    page.get_by_role("button", name="Upgrade", exact=True).click()

    expect(page).to_have_url(f"{upgrades_url}?run=1")
    expect(page.locator("#upgrade-run-result")).to_contain_text(
        "Every step ran and was committed."
    )
    expect(page.locator("#upgrade-run-profiles")).to_contain_text("1000")
    expect(page.locator("#upgrade-run-profiles")).to_contain_text("1003")
    after = snapshot()
    assert after["versions"][BASE] == ("1003",)
    assert after["versions"][CORE] == (LAST,)

    page.get_by_role("link", name="Back to the upgrades").click()
    rows = page.locator("#upgrade-history tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".run-result")).to_have_text("success")
    expect(page.locator("fieldset.upgrade-profile")).to_have_count(1)  # core only
    screenshot(page, "history")


def test_failing_step_shows_its_error_and_commits_nothing(
    page, upgrades_url, rewind, snapshot, screenshot
):
    rewind({BROKEN: "3000"})
    before = snapshot()
    page.goto(upgrades_url)

    page.get_by_role("button", name="Upgrade", exact=True).click()

    expect(page.locator("#upgrade-run-result")).to_contain_text("failed")
    expect(page.locator("#upgrade-run-result")).to_contain_text(
        "Nothing was committed."
    )
    failed = page.locator("#upgrade-run-steps li").nth(1)
    expect(failed.locator(".step-error")).to_have_text(
        "This test step fails on purpose."
    )
    traceback = failed.locator(".step-traceback")
    expect(traceback).to_be_hidden()  # folded
    screenshot(page, "failed-step")
    failed.get_by_text("Traceback", exact=True).click()
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("RuntimeError")
    assert snapshot() == before


def test_one_step_per_transaction_keeps_the_steps_before_a_failure(
    page, upgrades_url, rewind, snapshot
):
    rewind({BROKEN: "3000"})
    before = snapshot()
    page.goto(upgrades_url)
    page.get_by_label("one step").check()

    page.get_by_role("button", name="Upgrade", exact=True).click()

    expect(page.locator("#upgrade-run-result")).to_contain_text(
        "What was committed before it stopped stays"
    )
    steps = page.locator("#upgrade-run-steps li")
    expect(steps.nth(0).locator(".step-committed")).to_have_text("committed")
    expect(steps.nth(1).locator(".step-committed")).to_have_count(0)
    expect(page.locator("#upgrade-run-profiles")).to_contain_text("3001")
    after = snapshot()
    assert after["versions"][BROKEN] == ("3001",)
    assert after["markers"] == [*before["markers"], "broken-3001"]


@pytest.fixture
def slow_run(api, background, rewind, gates):
    """Return ``start()``: a real run of the slow profile, started over REST,
    inside its first step when ``start`` returns; the future of its POST."""

    def start():
        rewind({SLOW: "5000"})
        future = background({"profiles": [SLOW]})
        wait_for_status(api, at_step("Slow: first step"))
        return future

    yield start
    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)


def test_live_progress_of_a_run_started_elsewhere_and_cancel(
    page, upgrades_url, slow_run, gates, api, snapshot, screenshot
):
    page.goto(upgrades_url)
    progress = page.locator("#upgrade-progress")
    expect(progress).to_be_hidden()

    future = slow_run()

    # Without reloading: the page follows GET @upgrade/status.
    expect(progress).to_be_visible()
    expect(progress.locator(".js-step")).to_have_text("Slow: first step")
    expect(progress.locator(".js-total")).to_have_text("3")
    screenshot(page, "progress")
    slow.open_gate(gates, "1")
    expect(progress.locator(".js-step")).to_have_text("Slow: second step")
    expect(progress.locator(".js-done")).to_have_text("1")

    progress.get_by_role("button", name="Cancel the run").click()

    expect(progress.locator(".js-cancel-requested")).to_be_visible()
    slow.open_gate(gates, "2")
    # The run stops before its third step; the page shows its entry.
    expect(page).to_have_url(f"{upgrades_url}?run=1")
    expect(page.locator("#upgrade-run-result")).to_contain_text("cancelled")
    expect(page.locator("#upgrade-run-result")).to_contain_text(
        "Nothing was committed."
    )
    assert future.result(timeout=60).status_code != 200
    assert snapshot()["versions"][SLOW] == ("5000",)


def test_without_javascript(open_page, upgrades_url, rewind, snapshot, slow_run, api):
    page = open_page(javascript=False)
    rewind({BASE: "1000"})
    page.goto(upgrades_url)
    page.get_by_role("button", name="Dry run").click()
    expect(page).to_have_url(f"{upgrades_url}?run=1")
    expect(page.locator("#upgrade-run-result")).to_contain_text("dry run")

    slow_run()
    page.goto(upgrades_url)
    progress = page.locator("#upgrade-progress")
    expect(progress).to_be_visible()
    expect(progress.locator(".js-step")).to_have_text("Slow: first step")
    progress.get_by_role("button", name="Cancel the run").click()

    expect(page.locator("#global_statusmessage")).to_contain_text("Cancel requested")
    expect(progress.locator(".js-cancel-requested")).to_be_visible()
    assert api.get("/@upgrade/status").json()["state"] == "running"
    assert snapshot()["versions"][BASE] == ("1000",)


def test_keyboard_only(page, upgrades_url, rewind, snapshot):
    rewind({BASE: "1000"})
    page.goto(upgrades_url)
    page.locator("input[name='profiles:list']").focus()

    # Tab to the "Dry run" button and press Enter: no mouse.
    for _tab in range(20):
        if page.evaluate("document.activeElement.name") == "form.buttons.dry_run":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")

    expect(page).to_have_url(f"{upgrades_url}?run=1")
    expect(page.locator("#upgrade-run-result")).to_contain_text("dry run")
    assert snapshot()["versions"][BASE] == ("1000",)


def test_break_the_lock_of_a_dead_holder(
    open_page, upgrades_url, slow_run, site, api, screenshot
):
    from collective.upgradeapi.tracking import holder
    from collective.upgradeapi.tracking.publishing import side_connection
    from collective.upgradeapi.tracking.store import now

    slow_run()

    # As a restarted Zope sees the lock of the process it replaced (this
    # host, this process id, another boot): its holder is gone.
    def restarted(records):
        lock = records.get("lock")
        dead = {**holder.identity(), "boot": "a-predecessor", "started": now() - 60}
        records.set("lock", {**lock, "holder": dead})

    with side_connection(site) as side:
        side.transact(restarted)
    page = open_page(javascript=False)
    page.goto(upgrades_url)
    progress = page.locator("#upgrade-progress")
    expect(progress.locator(".js-stale").first).to_be_visible()
    expect(page.locator("#upgrade-holder")).to_contain_text(f"process {os.getpid()}")
    # The docs show a stand-in for this machine, as the HTTP examples do.
    page.locator("#upgrade-holder").evaluate(
        "node => node.textContent = 'The lock is held since "
        "2026-01-01T12:00:00+00:00 by process 4242 on zope-1.example.org.'"
    )
    screenshot(page, "stale-lock")

    progress.get_by_role("button", name="Break the lock").click()

    expect(page.locator("#global_statusmessage")).to_contain_text("The lock was broken")
    expect(progress).to_be_hidden()
    assert api.get("/@upgrade/lock").json()["lock"] is None
    (run,) = api.get("/@upgrade/history").json()["items"]
    assert run["result"] == "abandoned"
