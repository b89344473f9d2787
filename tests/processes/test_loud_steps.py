"""A step that logs 50 MB, in a real Zope process: bounded answers, flat memory.

One ``runwsgi`` process on a FileStorage, whose event log is at WARNING (as
many production sites), with the test-only profile of ``loud.zcml``
installed: its one step logs 50,000 lines of 1,000 characters. The process's
resident memory is read from ``/proc`` after a first dry run (which imports
what a run needs and creates the site's records), then after each of 20
more: it must not grow by 50 MB. Each answer keeps a bounded part of the log.
"""

from collective.upgradeapi.engine import logcapture
from collective.upgradeapi.testing import steps
from pathlib import Path
from zope_processes import FILESTORAGE_CONF
from zope_processes import install_profile
from zope_processes import instance_dir
from zope_processes import make_instance
from zope_processes import post
from zope_processes import process_env
from zope_processes import Processes
from zope_processes import serve

import pytest


pytestmark = pytest.mark.slow

LOUD = "collective.upgradeapi.testing:loud"
RUNS = 20
MB = 1024 * 1024


def resident(pid):
    """The resident memory of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"No VmRSS for process {pid}")


@pytest.fixture(scope="module")
def loud_zope(tmp_path_factory):
    """A Zope process serving a site with the loud profile at 10000.

    :returns: ``(url, pid)``.
    """
    base = tmp_path_factory.mktemp("loud")
    gates = base / "gates"
    gates.mkdir()
    env = process_env(gates)
    processes = Processes()
    try:
        etc = make_instance(
            base, FILESTORAGE_CONF.format(instance=instance_dir(base)), env
        )
        site_zcml = etc / "site.zcml"
        site_zcml.write_text(
            site_zcml.read_text().replace(
                "</configure>",
                '<include package="collective.upgradeapi.testing" file="loud.zcml" />'
                "\n</configure>",
            )
        )
        ini = etc / "zope.ini"
        ini.write_text(
            ini.read_text().replace(
                "[logger_root]\nlevel = INFO", "[logger_root]\nlevel = WARN"
            )
        )
        install_profile(etc, base, env, LOUD, "10000")
        (url,) = serve(processes, etc, base, env, names=("loud",))
        yield url, processes.started[-1][0].pid
    finally:
        processes.stop()


def dry_run(url):
    response = post(url, "/@upgrade", {"profiles": [LOUD], "dry_run": True})
    assert response.status_code == 200, response.text[:2000]
    return response


def test_loud_dry_runs_answer_little_and_keep_memory_flat(loud_zope):
    url, pid = loud_zope
    first = dry_run(url)
    answer = first.json()
    (step,) = answer["steps"]
    assert step["status"] == "done"
    assert step["log"][0].startswith("INFO collective.upgradeapi.testing.loud: ")
    assert step["log"][0].split()[5] == "000000"
    assert step["log"][-1].startswith("INFO collective.upgradeapi: Ran upgrade step")
    assert any("left out here" in line for line in step["log"])
    assert "left out here" in answer["report"]
    assert len(answer["report"]) <= logcapture.REPORT_BUDGET + 1024
    assert len(first.content) < 2 * (logcapture.STEP_BUDGET + logcapture.REPORT_BUDGET)
    logged = steps.LOUD_LINES * steps.LOUD_LINE
    assert logged >= 50 * 1000 * 1000

    before = resident(pid)
    sizes = []
    after = []
    for _ in range(RUNS):
        sizes.append(len(dry_run(url).content))
        after.append(resident(pid))
    figures = (
        f"answer: {max(sizes)} bytes; resident memory after the first run: "
        f"{before / MB:.1f} MB, after each of {RUNS} more: "
        + ", ".join(f"{value / MB:.0f}" for value in after)
    )
    assert max(after) - before < 50 * MB, figures
