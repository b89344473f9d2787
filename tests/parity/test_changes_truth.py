"""The change report is true: a dry run reports what the real run then does.

Each test reads the site's state (:func:`conftest.site_state`, the dump the
parity tests compare), dry-runs a selection and keeps its change report, runs
the same selection for real, reads the state again, and checks that the
report names every part of the configuration that changed and nothing else.
What the report does not cover (local components, the workflows' own
definitions, the markers of the test steps) is left out of the comparison.
"""

from collective.upgradeapi.testing import changes as steps
from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import OLD
from plone.registry.interfaces import IRegistry
from zope.component import getUtility

import pytest
import transaction


@pytest.fixture
def changing(site, as_owner):
    """The ``changes`` test profile installed and rewound (see
    ``tests/http/test_changes.py``)."""
    setup = site.portal_setup
    with as_owner():
        setup.runAllImportStepsFromProfile(f"profile-{steps.PROFILE}")
        site.invokeFactory("Document", steps.OLD_DOCUMENT, title="Old")
    del getUtility(IRegistry).records["collective.upgradeapi.testing.changes.imported"]
    setup.setLastVersionForProfile(steps.PROFILE, steps.REWIND)
    transaction.commit()


def _check(api, site, sync, state, truth, body):
    """Dry-run ``body``, run it, compare the report with the state's change."""
    sync()
    before = state(site)
    dry = api.post("/@upgrade", json={**body, "dry_run": True})
    assert dry.status_code == 200, dry.text
    report = dry.json()["changes"]
    real = api.post("/@upgrade", json=body)
    assert real.status_code == 200, real.text
    assert real.json()["committed"] is True
    sync()
    after = state(site)
    real_keys = truth(report, before, after, site.portal_setup)
    assert any(real_keys.values()), "the run changed nothing"
    return report, before, after


def test_a_profile_that_changes_every_part(
    api, site, sync, state, report_truth, changing
):
    body = {"profiles": [steps.PROFILE]}

    report, before, after = _check(api, site, sync, state, report_truth, body)

    # Content: what the catalog holds changed as the report says.
    content = {
        key.rsplit(" ", 1)[0]
        for key in before["content"].keys() ^ after["content"].keys()
    }
    assert content == {f"/plone/{steps.NEW_DOCUMENT}", f"/plone/{steps.OLD_DOCUMENT}"}
    assert report["content"]["added"]["Document"]["paths"] == [
        f"/plone/{steps.NEW_DOCUMENT}"
    ]
    assert report["content"]["removed"]["Document"]["paths"] == [
        f"/plone/{steps.OLD_DOCUMENT}"
    ]


def test_plones_core_upgrade(api, site, sync, state, report_truth, rewind):
    rewind({CORE: OLD})

    report, _, _ = _check(api, site, sync, state, report_truth, {})

    assert report["versions"][CORE][0] == OLD


def test_plones_core_upgrade_with_a_catalog_rebuild(
    api, site, sync, state, report_truth, rewind, as_owner
):
    with as_owner():
        site.invokeFactory("Folder", "truth", title="Truth")
        site.truth.invokeFactory("Document", "page", title="A page")
    # As an older core step would: ask for the follow-ups after the steps.
    site.portal_migration._needRecatalog = 1
    site.portal_migration._needUpdateRole = 1
    rewind({CORE: OLD})

    report, _, _ = _check(api, site, sync, state, report_truth, {})

    # Every catalogued object is written again (the site, the folder, the page).
    assert report["catalog"]["writes"] >= 3
