"""What the transaction calls of real upgrade steps do, in real and dry runs.

Each pattern has a real step in ``collective.upgradeapi.testing:patterns``
(see ``testing/patterns.py``); the documented behaviour is in
``engine/txn.py`` and ``docs/architecture.md``.
"""

from collective.upgradeapi.testing import patterns
from collective.upgradeapi.testing.patterns import OUTSIDE

import pytest


PATTERNS = "collective.upgradeapi.testing:patterns"
ABORTING = "collective.upgradeapi.testing:aborting"

KEPT = [
    "pattern-commit-begin",
    "pattern-commit-begin-after",
    "pattern-get-commit",
    "pattern-get-commit-after",
    "pattern-savepoint",
    "pattern-not-doomed",
    "pattern-own-connection",
]


@pytest.fixture
def outside(site, sync):
    """How often a step wrote through its own connection (committed there)."""

    def outside():
        sync()
        return site._p_jar.root().get(OUTSIDE, 0)

    return outside


def run(api, profiles, dry_run=False):
    return api.post("/@upgrade", json={"profiles": profiles, "dry_run": dry_run})


def test_real_run_keeps_every_pattern_in_one_transaction(
    api, rewind, snapshot, outside
):
    rewind({PATTERNS: "7000"})

    response = run(api, [PATTERNS])

    assert response.status_code == 200, response.text
    data = response.json()
    assert data["committed"] is True
    assert [step["status"] for step in data["steps"]] == ["done"] * 5
    state = snapshot()
    assert state["markers"] == KEPT
    assert state["versions"][PATTERNS] == ("7005",)
    assert outside() == 1
    assert data["report"].count("a savepoint was taken instead") == 2
    assert "began a new transaction; the run goes on" in data["report"]


def test_dry_run_runs_every_pattern_and_keeps_nothing(api, rewind, snapshot, outside):
    rewind({PATTERNS: "7000"})
    before = snapshot()

    response = run(api, [PATTERNS], dry_run=True)

    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["dry_run"], data["committed"]) == (True, False)
    assert [step["status"] for step in data["steps"]] == ["done"] * 5
    # The steps after a commit ran, in the same doomed transaction.
    logs = {step["title"]: step["log"] for step in data["steps"]}
    assert any(
        "pattern-commit-begin-after ran" in line
        for line in logs["Patterns: commit, then begin"]
    )
    assert any(
        "pattern-saw-doomed ran" in line
        for line in logs["Patterns: a step that checks isDoomed()"]
    )
    assert snapshot() == before
    # Out of reach, as documented: a step's own connection commits for real.
    assert outside() == 1


def test_failure_after_the_patterns_keeps_nothing_of_the_run(
    api, rewind, snapshot, outside, monkeypatch
):
    rewind({PATTERNS: "7000"})
    before = snapshot()
    monkeypatch.setitem(patterns.FAIL, "own_connection", True)

    response = run(api, [PATTERNS])

    assert response.status_code == 500
    data = response.json()
    assert data["committed"] is False
    assert [step["status"] for step in data["steps"]] == ["done"] * 4 + ["failed"]
    assert snapshot() == before
    # What the failing step committed on its own connection stays.
    assert outside() == 1


@pytest.mark.parametrize("dry_run", [False, True])
def test_abort_in_a_step_fails_the_run(api, rewind, snapshot, dry_run):
    rewind({PATTERNS: "7000", ABORTING: "5000"})
    before = snapshot()

    response = run(api, [PATTERNS, ABORTING], dry_run=dry_run)

    assert response.status_code == 500
    failed = response.json()["failed_step"]
    assert failed["profile"] == ABORTING
    assert failed["error"]["type"] == "StepAborted"
    assert snapshot() == before
