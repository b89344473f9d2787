"""The engine in-process, without HTTP.

Planner, selection checks and version bookkeeping on the integration layer
(each test's transaction is rolled back). The runner starts from the newest
committed state, so its tests commit their setup on the functional layer's
per-test database (``site``, ``rewind``), still calling the engine directly.
"""

from collective.upgradeapi import api
from collective.upgradeapi.engine import done
from collective.upgradeapi.engine.done import advance_version
from collective.upgradeapi.engine.plan import Planner
from collective.upgradeapi.engine.runner import Runner
from collective.upgradeapi.engine.selection import Selection
from collective.upgradeapi.engine.selection import SelectionError
from collective.upgradeapi.testing import steps as test_steps

import pytest
import transaction


CORE = "Products.CMFPlone:plone"
BASE = "collective.upgradeapi.testing:base"
DEPENDENT = "collective.upgradeapi.testing:dependent"
BROKEN = "collective.upgradeapi.testing:broken"


@pytest.fixture
def setup(portal):
    return portal.portal_setup


def test_planner_lists_pending_steps_in_run_order(portal, setup):
    setup.setLastVersionForProfile(BASE, "1000")
    setup.setLastVersionForProfile(DEPENDENT, "2000")

    plans = {plan.id: plan for plan in Planner(portal).pending_profiles()}

    base = plans[BASE]
    assert (base.instance, base.fs) == ("1000", "1003")
    assert [(s.source, s.dest) for s in base.steps] == [
        ("1000", "1001"),
        ("1000", "1001"),
        ("1001", "1002"),
        ("1002", "1003"),
    ]
    order = list(plans)
    assert order.index(BASE) < order.index(DEPENDENT), "dependencies first"


def test_planner_core_group_comes_first(portal):
    planner = Planner(portal)
    group = planner.core_group()

    assert CORE in group
    ids = [plan.id for plan in planner.all_profiles()]
    assert ids[: len([p for p in group if p in ids])] == [p for p in group if p in ids]


def test_planner_reports_a_downgraded_profile(portal, setup):
    setup.setLastVersionForProfile(BASE, "9999")

    plan = Planner(portal).pending_profiles(BASE)[0]

    assert plan.downgraded is True
    assert plan.steps == []


@pytest.mark.parametrize(
    "selection, details",
    [
        (Selection(profiles=("no.such:profile",)), "unknown_profiles"),
        (Selection(profiles=("plone.app.iterate:default",)), "not_installed"),
        (Selection(steps=("0" * 32,)), "unknown_steps"),
    ],
)
def test_selection_errors_name_what_is_wrong(portal, selection, details):
    with pytest.raises(SelectionError) as caught:
        Runner(portal).check(selection)

    assert caught.value.status == 400
    assert details in caught.value.body()


def test_advance_version_stops_at_the_first_pending_step(portal, setup):
    setup.setLastVersionForProfile(BASE, "1000")
    plan = Planner(portal).profile_plan(BASE)
    first_group = {plan.steps[0].id, plan.steps[1].id}
    third = plan.steps[2].id

    advance_version(portal, setup, plan, {plan.steps[0].id, third})

    assert setup.getLastVersionForProfile(BASE) == ("1000",)
    assert done.done_step_ids(portal, BASE) == {plan.steps[0].id, third}

    plan = Planner(portal).profile_plan(BASE)
    advance_version(portal, setup, plan, first_group)

    assert setup.getLastVersionForProfile(BASE) == ("1002",)
    assert done.done_step_ids(portal, BASE) == frozenset()


def test_dry_run_runs_the_steps_and_keeps_nothing(site, rewind, snapshot):
    rewind({BASE: "1000"})
    before = snapshot()
    runner = Runner(site, dry_run=True)
    events = []
    runner.listeners.append(lambda event, payload: events.append(event))

    result = runner.run(Selection(profiles=(BASE,)))

    assert result.ok and not result.committed
    assert [step.status for step in result.steps] == ["done"] * 4
    assert events == ["plan", *["start", "end"] * 4]
    assert "Test step base-1001-a ran." in result.report
    assert result.profiles[0].after == "1000"
    assert snapshot() == before


def _commit_elsewhere(site, change):
    """``change(site)`` committed on a connection of its own, as another
    process would commit it."""
    manager = transaction.TransactionManager()
    connection = site._p_jar.db().open(transaction_manager=manager)
    try:
        manager.begin()
        change(connection.root()["Application"][site.getId()])
        manager.commit()
    finally:
        connection.close()


def _stamped_past_two_steps(other):
    other.portal_setup.setLastVersionForProfile(BASE, "1002")


def _third_step_ran_on_its_own(other):
    third = Planner(other).profile_plan(BASE).steps[2]
    done.set_done_step_ids(other, BASE, {third.id})


@pytest.mark.parametrize(
    "elsewhere, ran",
    [
        (None, ["1001", "1001", "1002", "1003"]),
        (_stamped_past_two_steps, ["1003"]),
        (_third_step_ran_on_its_own, ["1001", "1001", "1003"]),
    ],
)
def test_a_run_plans_again_when_what_planning_reads_changed(
    site, rewind, elsewhere, ran
):
    """A run takes over the plans of its check (made before the lock is
    taken) unless another process committed, in between, what planning
    reads: then it plans again from the newest state."""
    rewind({BASE: "1000"})
    runner = Runner(site, dry_run=True)
    checked = runner.check(Selection(profiles=(BASE,)))
    if elsewhere is not None:
        _commit_elsewhere(site, elsewhere)
    planned = []
    runner.listeners.append(lambda event, payload: planned.append(payload))

    result = runner.run(Selection(profiles=(BASE,)))

    assert [step.task.dest for step in result.steps] == ran
    assert (planned[0] is checked) == (elsewhere is None)
    assert result.ok and not result.committed


def test_real_run_stops_at_a_failing_step_and_keeps_nothing(site, rewind, snapshot):
    rewind({BASE: "1000", BROKEN: "3000"})
    before = snapshot()

    result = Runner(site).run(Selection(profiles=(BASE, BROKEN)))

    assert not result.ok and not result.committed
    assert [step.status for step in result.steps] == ["done"] * 5 + ["failed"]
    assert result.failed_step.error["type"] == "RuntimeError"
    assert snapshot() == before
    assert test_steps.markers(site) == []


def test_real_run_commits_with_a_note(site, rewind, snapshot):
    rewind({BASE: "1000"})
    notes = []

    def before_commit(txn, result):
        txn.note("a test run")
        notes.append(len(result.steps))

    result = Runner(site).run(Selection(profiles=(BASE,)), before_commit)

    assert result.ok and result.committed
    assert notes == [4]
    assert snapshot()["versions"][BASE] == ("1003",)


def test_api_pending_is_the_planners_answer(portal, setup):
    setup.setLastVersionForProfile(BASE, "1000")

    assert [plan.id for plan in api.pending(portal, BASE)] == [BASE]


def test_mark_done_and_stamp_need_their_permission_in_the_api(site, rewind, snapshot):
    """Checked by the engine API, not by one door: add-on code and the
    in-process door cannot skip it."""
    from collective.upgradeapi.errors import UpgradeError
    from plone.app.testing import login
    from plone.app.testing import logout
    from plone.app.testing import setRoles
    from plone.app.testing import TEST_USER_ID
    from plone.app.testing import TEST_USER_NAME

    rewind({BASE: "1000"})
    before = snapshot()
    setRoles(site, TEST_USER_ID, ["Site Administrator"])  # may manage the portal
    login(site, TEST_USER_NAME)
    try:
        with pytest.raises(UpgradeError) as marked:
            api.upgrade(site, Selection(profiles=[BASE]), mark_done=True)
        with pytest.raises(UpgradeError) as stamped:
            api.stamp(site, [BASE])
    finally:
        logout()
    assert (marked.value.status, marked.value.error_type) == (403, "Forbidden")
    assert (stamped.value.status, stamped.value.error_type) == (403, "Forbidden")
    assert snapshot() == before
