"""``plone-upgrade --zope-conf``: the in-process door, on real Zope instances.

No test layer: an instance made with ``mkwsgiinstance`` (see
``zope_processes.py``), and ``plone-upgrade`` run as a subprocess that opens
its database itself, as in a container's entrypoint. The instance has two
Plone sites: ``Plone`` (Volto-ready, from ``scripts/create_site.py``) and
``cms`` (a plain Plone site with the test profiles ``base`` and ``broken``);
most tests work on ``cms``. The database state before and after is read with
``zconsole`` scripts. The instances are made in ``inprocess_instances.py``.

The slow test serves a ZEO database with ``runwsgi`` while the in-process
door runs on the same database: each door is refused (409) while the other
holds the site's upgrade lock.
"""

from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import FS
from collective.upgradeapi.testing.versions import OLD
from concurrent.futures import ThreadPoolExecutor
from inprocess_instances import BASE
from inprocess_instances import BROKEN
from inprocess_instances import Instance
from inprocess_instances import plone_upgrade
from inprocess_instances import served_zeo
from inprocess_instances import SITE
from inprocess_instances import STATE
from inprocess_instances import zconsole
from zope_processes import get
from zope_processes import post
from zope_processes import SLOW
from zope_processes import wait_until

import getpass
import json
import pytest
import subprocess
import sys


HEAVY = ("Zope2", "ZODB", "Products", "plone", "zope", "transaction", "App", "ZEO")


def one_line(text):
    """The stderr of a failed command: one ``Error:`` line."""
    lines = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    return Instance(tmp_path_factory.mktemp("inprocess"))


# -- without Zope ----------------------------------------------------------------


def test_help_imports_neither_zope_nor_plone():
    """Over HTTP the CLI needs click and requests only: --help loads no Zope."""
    code = (
        "import sys\n"
        "from plone_upgrade import main\n"
        "for args in ([], ['check'], ['plan'], ['run'], ['history'], ['wait']):\n"
        "    try:\n"
        "        main([*args, '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        # Modules with a file: Plone 6.0's namespace .pth files create empty
        # namespace modules (Products, plone, zope) at start-up.
        f"heavy = sorted(m for m, module in sys.modules.items() if m.split('.')[0] "
        f"in {HEAVY!r} and getattr(module, '__file__', None))\n"
        "print('HEAVY:', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert "--zope-conf PATH" in result.stdout
    assert result.stdout.splitlines()[-1] == "HEAVY: []"


def test_a_crash_exits_2_not_1():
    """Exit 1 means "upgrades pending": a bug or a broken install must not."""
    code = (
        "from plone_upgrade import options, main\n"
        "def broken(*args):\n"
        "    raise ImportError('a broken install')\n"
        "options.choose = broken\n"
        "main(['check', '--url', 'http://127.0.0.1:1/plone'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )

    assert result.returncode == 2
    assert "ImportError: a broken install" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "--url", "http://x"], "Give either --url or --zope-conf, not both."),
        (["wait"], "`wait` has no meaning with --zope-conf"),
        (["--site", "a", "--all-sites", "check"], "Give either --site or --all-sites"),
        (["check", "--token", "t"], "--token has no meaning with --zope-conf"),
        (["plan", "--timeout", "5"], "--timeout has no meaning with --zope-conf"),
        (["run", "--all", "--profile", BASE], "Give either --all or --profile"),
    ],
)
def test_usage_errors(tmp_path, args, message):
    zope_conf = tmp_path / "zope.conf"
    zope_conf.write_text("")

    result = plone_upgrade("--zope-conf", str(zope_conf), *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_site_needs_zope_conf():
    result = plone_upgrade("check", "--url", "http://127.0.0.1:1/x", "--site", "x")

    assert result.returncode == 2
    assert "--site and --all-sites need --zope-conf" in result.stderr


def test_zope_conf_that_cannot_start(tmp_path):
    zope_conf = tmp_path / "zope.conf"
    zope_conf.write_text("<nonsense>\n")

    result = plone_upgrade("--zope-conf", str(zope_conf), "check", "--json")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        f"Error: Cannot start Zope with {zope_conf}"
    )
    assert json.loads(result.stdout)["type"] == "ZopeStartFailed"


# -- on a FileStorage instance --------------------------------------------------


def test_several_sites_need_site_or_all_sites(instance):
    result = instance.cli("check", "--json", site=None)

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: There are 2 Plone sites at the root of the database of "
        f"{instance.zope_conf}: Plone, cms. Choose one with --site ID, or give "
        "--all-sites."
    )
    document = json.loads(result.stdout)
    assert document["type"] == "SeveralSites"
    assert document["sites"] == ["Plone", "cms"]


def test_unknown_site(instance):
    result = instance.cli("check", site="nosuch")

    assert result.returncode == 2
    assert "There is no Plone site 'nosuch'" in one_line(result.stderr)
    assert "Plone sites: Plone, cms." in result.stderr


def test_check_and_plan_a_rewound_site(instance):
    instance.state({CORE: OLD, BASE: "1000"})

    # The command line's --zope-conf wins over PLONE_URL in the environment.
    result = instance.cli("check", PLONE_URL="http://127.0.0.1:1/nothing")

    assert result.returncode == 1, result.stderr
    first, *table = result.stdout.splitlines()
    assert first.startswith(f"Upgrades pending on /{SITE}: ")
    assert first.endswith(" steps in 2 profiles.")
    assert table[1].split()[:4] == [CORE, OLD, "->", FS]
    assert table[2].split() == [BASE, "1000", "->", "1003", "4", "steps"]
    document = json.loads(instance.cli("plan", "--profile", BASE, "--json").stdout)
    assert document["@id"] == f"http://localhost/{SITE}/@upgrade"
    assert document["needs_upgrade"] is True
    assert document["versions"] == {"fs": FS, "instance": OLD}
    assert [p["id"] for p in document["profiles"]] == [BASE]
    assert set(document) == {
        "@id",
        "upgrade_steps",
        "versions",
        "needs_upgrade",
        "profiles",
    }


def test_plan_unknown_profile(instance):
    result = instance.cli("plan", "--profile", "no.such:default", "--json")

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "Error: Bad request: Unknown profile id: no.such:default."
    )
    assert json.loads(result.stdout) == {
        "type": "BadRequest",
        "message": "Unknown profile id: no.such:default.",
        "unknown_profiles": ["no.such:default"],
        "status": 400,
    }


def test_a_refusal_says_what_to_do_in_commands(instance):
    """The engine's hints, in the command line's terms (not HTTP's)."""
    before = instance.state({BASE: "1000"})

    result = instance.cli("run", "--profile", "no.such:default", "--json")

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "Error: Bad request: Unknown profile id(s): no.such:default. "
        "`plone-upgrade plan` lists the pending steps with their ids."
    )
    assert json.loads(result.stdout)["unknown_profiles"] == ["no.such:default"]
    assert instance.state() == before


def test_dry_run_changes_nothing(instance):
    before = instance.state({CORE: OLD, BASE: "1000"})

    result = instance.cli("run", "--all", "--dry-run", "--report")

    assert result.returncode == 0, result.stderr
    assert "Dry run finished in " in result.stdout
    assert "Test step base-1001-a ran." in result.stdout
    assert f"Dry run of /{SITE}: every profile with pending steps..." in result.stderr
    assert "  [1/" in result.stderr
    after = instance.state()
    assert after["versions"] == before["versions"]
    assert after["markers"] == before["markers"]
    assert after["runs"] == before["runs"] + 1


def test_run_brings_the_site_up_to_date(instance):
    before = instance.state({CORE: OLD, BASE: "1000"})

    result = instance.cli("run", "--all", "--json", "--no-progress")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["committed"] is True
    assert document["upgraded"] is True
    assert document["versions"] == {"fs": FS, "instance": FS}
    run_url = f"http://localhost/{SITE}/@upgrade/history/{document['run_id']}"
    assert document["run"] == run_url
    assert {step["status"] for step in document["steps"]} == {"done"}
    check = instance.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout == f"/{SITE} is up to date (Plone profile version {FS}).\n"
    after = instance.state()
    assert after["versions"][CORE] == FS
    assert after["versions"][BASE] == "1003"
    added = after["markers"][len(before["markers"]) :]
    assert [m for m in added if m.startswith("base-")] == [
        "base-1001-a",
        "base-1001-b",
        "base-1002",
    ]


def test_failing_step_exits_1_and_writes_nothing(instance):
    before = instance.state({BASE: "1000", BROKEN: "3000"})

    result = instance.cli("run", "--profile", BASE, "--profile", BROKEN)

    assert result.returncode == 1
    out = result.stdout
    statuses = [line.split()[0] for line in out.splitlines()[1:7]]
    assert statuses == ["done"] * 5 + ["failed"]
    assert f"Failed step: 'Broken: a step that raises' (profile {BROKEN}, id " in out
    assert "Error: RuntimeError: This test step fails on purpose." in out
    assert out.endswith("Upgrade failed; nothing was committed.\n")
    assert one_line(result.stderr).startswith(
        "Error: The upgrade failed at step 'Broken: a step that raises'"
    )
    after = instance.state()
    assert after["versions"] == before["versions"]
    assert after["markers"] == before["markers"]


def test_commit_per_profile_keeps_the_profiles_before_a_failure(instance):
    before = instance.state({BASE: "1000", BROKEN: "3000"})

    result = instance.cli(
        "run", "--profile", BASE, "--profile", BROKEN, "--commit", "profile"
    )

    assert result.returncode == 1
    out = result.stdout
    assert "Committed before the failure (these stay):\n" in out
    assert f"\n  {BASE}: 4 steps (transaction 0x" in out
    assert out.endswith("Run the same command again to continue from there.\n")
    assert "one transaction per profile..." in result.stderr
    assert "what was committed before it stays" in one_line(result.stderr)
    after = instance.state()
    assert after["versions"] == {**before["versions"], BASE: "1003"}
    added = after["markers"][len(before["markers"]) :]
    assert added == ["base-1001-a", "base-1001-b", "base-1002"]
    assert after["runs"] == before["runs"] + 1


def test_stamp_and_mark_done(instance):
    before = instance.state({BASE: "1005", BROKEN: "3000"})

    stamped = instance.cli("stamp", BASE)
    refused = instance.cli("stamp", BROKEN, "--json")
    empty = instance.cli("stamp", "", "--json")
    marked = instance.cli("run", "--profile", BROKEN, "--mark-done")

    assert stamped.returncode == 0, stamped.stderr
    assert stamped.stdout.startswith(f"Stamped {BASE} at version 1003 (was 1005).\n")
    assert refused.returncode == 2
    assert one_line(refused.stderr).startswith(
        "Error: Bad request: Profile(s) not downgraded: "
    )
    assert json.loads(refused.stdout)["status"] == 400
    # Read as POST @upgrade reads a body: the same message.
    assert empty.returncode == 2
    assert "'stamp' must be a non-empty list" in one_line(empty.stderr)
    assert json.loads(empty.stdout)["status"] == 400
    assert marked.returncode == 0, marked.stderr
    assert ": 2 steps marked done without running them; committed." in marked.stdout
    after = instance.state()
    assert after["versions"] == {**before["versions"], BASE: "1003", BROKEN: "3002"}
    assert after["markers"] == before["markers"], "no step ran"
    assert after["runs"] == before["runs"] + 2, "the refusal is not recorded"


def test_history_records_the_os_user_or_user(instance):
    instance.state({BASE: "1000"})
    assert instance.cli("run", "--profile", BASE, "--dry-run").returncode == 0
    named = instance.cli("run", "--profile", BASE, "--dry-run", "--user", "ci-bot")
    assert named.returncode == 0, named.stderr

    result = instance.cli("history", "--limit", "2", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["@id"] == f"http://localhost/{SITE}/@upgrade/history"
    assert [item["user"] for item in document["items"]] == [
        "ci-bot",
        getpass.getuser(),
    ]
    newest = document["items"][0]
    assert newest["dry_run"] is True
    assert newest["result"] == "success"
    assert document["batching"]["next"].endswith("?b_start=2&b_size=2")
    text = instance.cli("history", str(newest["id"]))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"Run {newest['id']}: dry run of {BASE} by ci-bot\n")


def test_history_of_an_unknown_run(instance):
    result = instance.cli("history", "99999")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        "Error: Not found: There is no upgrade run '99999' in the history."
    )


def test_all_sites(instance):
    instance.state({BASE: "1000"})
    instance.state({SLOW: "5000"}, site="Plone")

    text = instance.cli("--all-sites", "check", site=None)
    as_json = instance.cli("--all-sites", "check", "--json", site=None)

    assert text.returncode == 1, text.stderr
    assert text.stdout.startswith("=== Plone ===\nUpgrades pending on /Plone: ")
    assert f"\n\n=== {SITE} ===\nUpgrades pending on /{SITE}: " in text.stdout
    assert as_json.returncode == 1
    documents = json.loads(as_json.stdout)["sites"]
    assert list(documents) == ["Plone", SITE]
    assert all(document["needs_upgrade"] for document in documents.values())


def test_all_sites_exit_code_is_the_worst(instance):
    result = instance.cli("--all-sites", "plan", "--profile", BASE, site=None)

    # Not installed in Plone (2), pending in cms (0).
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: Plone: Bad request: Profile not installed on this site: {BASE}."
    )
    assert f"=== {SITE} ===\n{BASE}: " in result.stdout


# -- next to a Zope server, on ZEO ----------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A ZEO server and one ``runwsgi`` serving its site ``Plone``; see
    :func:`inprocess_instances.served_zeo`."""
    with served_zeo(tmp_path_factory.mktemp("served")) as served:
        yield served


def close_gates(gates):
    for gate in gates.iterdir():
        gate.unlink()


def open_gates(gates):
    for name in ("1", "2", "3"):
        slow.open_gate(gates, name)


def running(url):
    return get(url, "/@upgrade/status").json()["state"] == "running"


@pytest.mark.slow
def test_the_doors_share_lock_history_and_documents(served):
    url, gates = served["url"], served["gates"]
    door = ["--zope-conf", served["zope_conf"]]
    env = {k: v for k, v in served["env"].items() if not k.startswith("PLONE_")}

    # Same documents through both doors (but the server's URL).
    http_info = get(url, "/@upgrade").json()
    local_info = json.loads(plone_upgrade(*door, "check", "--json", env=env).stdout)
    assert local_info.pop("@id") == "http://localhost/Plone/@upgrade"
    assert http_info.pop("@id") == f"{url}/@upgrade"
    assert local_info == http_info

    # In-process run at its first gate: HTTP is refused.
    local = plone_upgrade(*door, "run", "--profile", SLOW, env=env, background=True)
    try:
        wait_until(lambda: running(url), 120, "the in-process run")
        refused = post(url, "/@upgrade", {"profiles": [SLOW]})
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"] == "UpgradeLocked"
        assert getpass.getuser() in refused.json()["message"]
    finally:
        open_gates(gates)
        stdout, stderr = local.communicate(timeout=120)
    assert local.returncode == 0, stderr
    assert stdout.endswith(": 3 steps committed.\n")

    # HTTP run at its first gate: the in-process door is refused.
    close_gates(gates)
    zconsole(
        served["zope_conf"],
        STATE.format(site="Plone", versions={SLOW: "5000"}),
        served["base"],
        env=env,
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        remote = pool.submit(post, url, "/@upgrade", {"profiles": [SLOW]})
        try:
            wait_until(lambda: running(url), 60, "the HTTP run")
            result = plone_upgrade(*door, "run", "--profile", SLOW, "--json", env=env)
        finally:
            open_gates(gates)
        assert remote.result().status_code == 200, remote.result().text
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        "Error: Conflict: An upgrade started by admin is running"
    )
    assert json.loads(result.stdout)["type"] == "UpgradeLocked"

    # One history, as both doors show it.
    http_history = get(url, "/@upgrade/history").json()
    local_history = plone_upgrade(*door, "history", "--json", env=env)
    local_history = json.loads(local_history.stdout)
    assert [item["user"] for item in http_history["items"]] == [
        "admin",
        getpass.getuser(),
    ]
    assert [item["id"] for item in local_history["items"]] == [
        item["id"] for item in http_history["items"]
    ]
    for local_item, http_item in zip(
        local_history["items"], http_history["items"], strict=True
    ):
        assert local_item.pop("@id").replace("http://localhost", "") == http_item.pop(
            "@id"
        ).replace(url.removesuffix("/Plone"), "")
        assert local_item == http_item
