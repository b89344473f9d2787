"""A real older database: a site made by Plone 6.0.15, upgraded by this Plone.

``tests/fixtures/plone60.fs.gz`` (made by ``scripts/make-plone60-fixture.py``)
holds a classic Plone 6.0 site with content. Each copy is opened as a
FileStorage in the test process (the test layer loaded the code). On one copy
the core and every core add-on (``profiles: "all"``) is dry-run, and the
database, opened again, is the same; on another the same selection runs for
real. The dry run's change report names exactly what the real run changed,
and the real run reached the versions of the code.
"""

from collective.upgradeapi import api
from collective.upgradeapi.compat import PLONE_VERSION
from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import FS

import pytest


pytestmark = pytest.mark.skipif(
    PLONE_VERSION == (6, 0),
    reason="The database was made by Plone 6.0: there is nothing to upgrade.",
)

ALL = api.Selection(profiles="all")


def test_a_plone_60_database(plone60, state, compare, report_truth):
    with plone60("dry") as site:
        plans = api.pending(site)
        assert CORE in [plan.id for plan in plans]
        before = state(site)
        dry = api.upgrade(site, ALL, dry_run=True, user="test")
        assert dry.ok, dry.failed_step.error
        report = dry.changes
    with plone60("dry") as site:
        compare(
            before,
            state(site),
            "The dry run changed the database (Plone: before, this add-on: after)",
        )

    with plone60("real") as site:
        assert state(site) == before
        real = api.upgrade(site, ALL, user="test")
        assert real.ok, real.failed_step.error
    with plone60("real") as site:
        after = state(site)
        setup = site.portal_setup
        assert api.pending(site) == []
        changed = report_truth(report, before, after, setup)

    # Every pending profile reached its code's version (the core its
    # metadata.xml), and the report says so.
    reached = {plan.id: plan.fs if plan.core else plan.code_version for plan in plans}
    assert reached[CORE] == FS
    for profile_id, version in reached.items():
        assert ".".join(after["profile_versions"][profile_id]) == version
        assert report["versions"][profile_id][1] == version
    assert set(reached) <= changed["profile_versions"]
