"""``plone-upgrade``: the command-line client, run as a subprocess.

Most tests talk HTTP to the functional test site (a real WSGI server). What
that site cannot show (a server without the add-on, without a status or
history service, or too slow to answer) is played by a small local HTTP
server, :func:`fake`.
"""

from collective.upgradeapi.testing import slow
from collective.upgradeapi.testing.versions import CORE
from collective.upgradeapi.testing.versions import FS
from collective.upgradeapi.testing.versions import OLD
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from plone.app.testing import setRoles
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import TEST_USER_PASSWORD

import json
import os
import pytest
import requests
import socket
import subprocess
import sys
import threading
import time
import transaction


BASE = "collective.upgradeapi.testing:base"
DEPENDENT = "collective.upgradeapi.testing:dependent"
BROKEN = "collective.upgradeapi.testing:broken"
SLOW = "collective.upgradeapi.testing:slow"
COMMANDS = ("wait", "check", "plan", "run", "stamp", "history", "unlock", "cancel")


def plone_upgrade(*args, env=None, timeout=60, background=False):
    """Run ``python -m plone_upgrade ARGS`` with ``env`` only.

    No ``PLONE_*`` variable of the caller leaks in. Returns the completed
    process, in text mode, stdin closed; with ``background``, the running
    :class:`subprocess.Popen` with pipes for stdout and stderr.
    """
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PLONE_")
    }
    environment.update({k: v for k, v in (env or {}).items() if v is not None})
    if background:
        return subprocess.Popen(
            [sys.executable, "-m", "plone_upgrade", *args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    return subprocess.run(
        [sys.executable, "-m", "plone_upgrade", *args],
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def free_port():
    """A local TCP port that nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_line(text):
    """The stderr of a failed command: one ``Error:`` line."""
    lines = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def cli(site):
    """Return ``cli(*args, **env)``: ``plone-upgrade`` against the test site.

    As the site owner, with ``PLONE_URL``, ``PLONE_USER`` and
    ``PLONE_PASSWORD`` set; ``PLONE_X=None`` removes a variable.
    """

    def cli(*args, background=False, **env):
        environment = {
            "PLONE_URL": site.absolute_url(),
            "PLONE_USER": SITE_OWNER_NAME,
            "PLONE_PASSWORD": SITE_OWNER_PASSWORD,
            **env,
        }
        return plone_upgrade(*args, env=environment, background=background)

    cli.url = site.absolute_url()
    cli.site = site
    return cli


@pytest.fixture
def editor(site):
    """The test user, with roles that may edit but not manage the portal."""
    setRoles(site, TEST_USER_ID, ["Editor", "Site Administrator"])
    transaction.commit()
    return TEST_USER_NAME, TEST_USER_PASSWORD


def pending_ids(document, profile_id):
    profile = next(p for p in document["profiles"] if p["id"] == profile_id)
    return [step["id"] for step in profile["steps"] if not step["done"]]


# -- the fake server ------------------------------------------------------------


class FakeSite:
    """Canned answers: ``routes[("GET", "/plone/@upgrade")] = (status, body)``.

    A route may also be a callable returning ``(status, body)``. The 2xx
    answers carry the header of collective.upgradeapi's services, unless
    ``addon`` is false.
    """

    def __init__(self, server):
        self.server = server
        self.routes = {}
        self.seen = []
        self.addon = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}/plone"


def _handler(fake_site):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fake_site.seen.append((self.command, self.path, body))
            route = fake_site.routes.get((self.command, self.path.split("?")[0]))
            if route is None:
                status, document = 404, {"type": "NotFound", "message": "Not found"}
            else:
                status, document = route() if callable(route) else route
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if fake_site.addon and status < 300:
                self.send_header("X-Upgrade-Service", "collective.upgradeapi")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = answer

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that gave up (``--timeout``) is no error here."""


@pytest.fixture
def fake():
    """A local HTTP server playing a site; see :class:`FakeSite`."""
    server = QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    fake_site = FakeSite(server)
    server.RequestHandlerClass = _handler(fake_site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake_site
    server.shutdown()
    server.server_close()


def fake_cli(fake_site, *args):
    return plone_upgrade(
        *args,
        env={"PLONE_URL": fake_site.url, "PLONE_USER": "admin", "PLONE_PASSWORD": "x"},
    )


UP_TO_DATE = {
    "@id": "http://127.0.0.1/plone/@upgrade",
    "upgrade_steps": {},
    "versions": {"fs": "6205", "instance": "6205"},
    "needs_upgrade": False,
    "profiles": [],
}


def fake_run_answer(steps=2):
    return {
        "@id": "http://127.0.0.1/plone/@upgrade",
        "dry_run": False,
        "report": "",
        "upgraded": True,
        "versions": {"fs": "6205", "instance": "6205"},
        "steps": [
            {
                "id": f"s{n}",
                "profile": "my.addon:default",
                "title": f"Step {n}",
                "source": str(n),
                "dest": str(n + 1),
                "status": "done",
                "duration": 0.5,
            }
            for n in range(steps)
        ],
        "profiles": [],
        "committed": True,
        "duration": 1.0,
    }


# -- help and packaging ---------------------------------------------------------


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_documents_exit_codes(command):
    result = plone_upgrade(*([command] if command else []), "--help")

    assert result.returncode == 0
    assert "Exit codes:" in result.stdout
    assert "2  usage error, connection refused, timeout" in result.stdout
    if command:
        assert "--json" in result.stdout
        assert "PLONE_URL" in result.stdout


def test_client_imports_neither_zope_nor_plone():
    # Only modules with a file count: Plone 6.0's namespace .pth files create
    # empty namespace modules (Products, plone, zope) at start-up.
    code = (
        "import sys, plone_upgrade, plone_upgrade.commands, plone_upgrade.run\n"
        "heavy = sorted(m for m, module in sys.modules.items() if m.split('.')[0] in "
        "('Zope2', 'ZODB', 'Products', 'plone', 'zope', 'transaction', 'App') "
        "and getattr(module, '__file__', None))\n"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "plone-upgrade")
    result = subprocess.run([script, "--version"], capture_output=True, text=True)

    assert result.returncode == 0
    assert result.stdout.startswith("plone-upgrade, version ")


def test_missing_url_is_a_usage_error():
    result = plone_upgrade("check")

    assert result.returncode == 2
    assert "Missing option '--url'" in result.stderr
    assert result.stdout == ""


# -- check --------------------------------------------------------------------------


def test_check_up_to_date(cli):
    result = cli("check")

    assert result.returncode == 0, result.stderr
    assert f"is up to date (Plone profile version {FS})" in result.stdout
    assert result.stderr == ""


def core_steps(api):
    """The pending core steps, as GET @upgrade lists them."""
    profiles = api.get("/@upgrade").json()["profiles"]
    return next(profile for profile in profiles if profile["id"] == CORE)["steps"]


def test_check_pending(cli, rewind, api):
    rewind({BASE: "1000", CORE: OLD})
    core = len(core_steps(api))

    result = cli("check")

    assert result.returncode == 1, result.stderr
    first, *table = result.stdout.splitlines()
    assert first.endswith(f": {core + 4} steps in 2 profiles.")
    assert table[1].split() == [CORE, OLD, "->", FS, str(core), "steps"]
    assert table[2].split() == [BASE, "1000", "->", "1003", "4", "steps"]


def test_check_json(cli, rewind):
    rewind({BASE: "1000"})

    result = cli("check", "--json")

    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["needs_upgrade"] is True
    assert [p["id"] for p in document["profiles"]] == [BASE]
    assert result.stderr == ""


def test_check_warns_about_a_downgraded_profile(cli, rewind):
    rewind({BASE: "9999"})

    result = cli("check")

    assert result.returncode == 0
    assert f"Warning: {BASE}: the database records a newer version" in result.stderr


def test_check_and_plan_show_where_a_lagging_profile_ends(cli, site, rewind):
    """An add-on whose steps go past its metadata.xml (plone.volto 6.0.1)."""
    from plone.app.testing import login
    from plone.app.testing import logout

    lagging = "collective.upgradeapi.testing:shape-lagging"
    login(site, TEST_USER_NAME)
    setRoles(site, TEST_USER_ID, ["Manager"])
    site.portal_setup.runAllImportStepsFromProfile(f"profile-{lagging}")
    logout()
    rewind({lagging: "1019"})

    checked = cli("check")
    planned = cli("plan", "--profile", lagging)

    assert checked.returncode == 1
    assert [lagging, "1019", "->", "1101", "(metadata.xml:", "1100)", "3", "steps"] in [
        line.split() for line in checked.stdout.splitlines()
    ]
    assert "Warning" not in checked.stderr
    assert planned.stdout.splitlines()[0].endswith(
        "1019 -> 1101 (metadata.xml: 1100), 3 pending steps"
    )
    rewind({lagging: "1101"})
    assert cli("check", "--json").returncode == 0


# -- connection and authentication errors ----------------------------------------


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/plone"

    result = plone_upgrade("check", "--url", url)

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: Cannot connect to {url}: connection refused. Is the site running "
        "at this address? (`plone-upgrade wait` waits for it.)"
    )
    assert result.stdout == ""


def test_connection_refused_json():
    url = f"http://127.0.0.1:{free_port()}/plone"

    result = plone_upgrade("plan", "--json", "--url", url)

    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["type"] == "ConnectionError"
    assert "connection refused" in document["message"]


def test_wrong_password(cli, site):
    result = cli("check", PLONE_PASSWORD="wrong")

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: Unauthorized (HTTP 401): {site.absolute_url()} refused user "
        "'admin': wrong password or token, or no 'Manage portal' permission on "
        "this site."
    )
    assert result.stdout == ""


def test_wrong_password_json(cli):
    result = cli("run", "--dry-run", "--json", PLONE_PASSWORD="wrong")

    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["status"] == 401
    assert document["type"] == "Unauthorized"


def test_anonymous(cli):
    result = cli("check", PLONE_USER=None)

    assert result.returncode == 2
    assert "no credentials given; use --user" in one_line(result.stderr)


def test_user_without_manage_portal(cli, editor):
    result = cli("check", PLONE_USER=editor[0], PLONE_PASSWORD=editor[1])

    assert result.returncode == 2
    assert "'Manage portal' permission" in one_line(result.stderr)


def test_no_password_and_no_terminal(cli):
    result = cli("check", PLONE_PASSWORD=None)

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "Error: No password for user 'admin': set PLONE_PASSWORD (there is no "
        "terminal to ask on)."
    )


def test_password_is_asked_for_on_a_terminal(site):
    """Without PLONE_PASSWORD, the password is read from the terminal, hidden."""
    import pty

    leader, follower = pty.openpty()
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PLONE_")
    }
    environment.update({"PLONE_URL": site.absolute_url(), "PLONE_USER": "admin"})
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "plone_upgrade", "check"],
            env=environment,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        prompt = ""
        while not prompt.endswith("Password for admin: "):
            character = process.stderr.read(1)
            assert character, prompt
            prompt += character
        # Typed once the prompt is there: the terminal's input is flushed
        # when echo is turned off.
        os.write(leader, f"{SITE_OWNER_PASSWORD}\n".encode())
        stdout, stderr = process.communicate(timeout=30)
        stderr = prompt + stderr
    finally:
        os.close(leader)
        os.close(follower)

    assert process.returncode == 0, stderr
    assert "Password for admin: " in stderr
    assert SITE_OWNER_PASSWORD not in stdout + stderr
    assert "is up to date" in stdout


def test_site_not_found(cli, site):
    url = f"{site.absolute_url()}-nosuch"

    result = cli("check", PLONE_URL=url)

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: Not found (HTTP 404): {url}/@upgrade. Is {url} the URL of a "
        "Plone site? If it is, collective.upgradeapi is not loaded there (install "
        "it in the site's Python environment and restart Zope)."
    )


def test_builtin_service_means_addon_not_loaded(fake):
    builtin = {k: v for k, v in UP_TO_DATE.items() if k != "needs_upgrade"}
    fake.routes[("GET", "/plone/@upgrade")] = (200, builtin)
    fake.addon = False

    result = fake_cli(fake, "run", "--dry-run")

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: {fake.url}/@upgrade is plone.restapi's built-in @upgrade "
        "service: collective.upgradeapi is not loaded there (install it in the "
        "site's Python environment and restart Zope)."
    )
    assert [(method, path) for method, path, _ in fake.seen] == [
        ("GET", "/plone/@upgrade")
    ], "nothing may be posted to another @upgrade service"


def test_timeout(fake):
    """The client gives up while the server still has not answered."""
    release, answered = threading.Event(), threading.Event()

    def slow():
        release.wait(60)
        answered.set()
        return 200, UP_TO_DATE

    fake.routes[("GET", "/plone/@upgrade")] = slow

    result = fake_cli(fake, "check", "--timeout", "0.5")

    assert not answered.is_set(), "the client did not wait for the answer"
    release.set()
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: No answer from {fake.url}/@upgrade within 0.5 s (see --timeout)."
    )


def test_url_may_name_the_service(cli, site):
    result = cli("check", PLONE_URL=f"{site.absolute_url()}/@upgrade/")

    assert result.returncode == 0, result.stderr


# -- tokens ------------------------------------------------------------------------


def test_login_then_token(cli):
    result = cli("check", "--login")

    assert result.returncode == 0, result.stderr


def test_token(cli, api):
    token = api.post("/@login", json={"login": "admin", "password": "secret"})
    token = token.json()["token"]

    result = cli("check", PLONE_USER=None, PLONE_PASSWORD=None, PLONE_TOKEN=token)

    assert result.returncode == 0, result.stderr


def test_bad_token(cli):
    result = cli("check", "--token", "not.a.token", PLONE_USER=None)

    assert result.returncode == 2
    assert "refused the token" in one_line(result.stderr)


def test_login_with_wrong_password(cli):
    result = cli("check", "--login", PLONE_PASSWORD="wrong")

    assert result.returncode == 2
    assert "refused the login of user 'admin'" in one_line(result.stderr)


def test_user_on_command_line_beats_token_from_environment(cli):
    result = cli("check", "--user", "admin", PLONE_USER=None, PLONE_TOKEN="bad")

    assert result.returncode == 0, result.stderr


# -- wait --------------------------------------------------------------------------


def test_wait_for_a_running_site(cli):
    result = cli("wait", "--timeout", "5")

    assert result.returncode == 0, result.stderr
    assert " answers after " in result.stdout


def test_wait_json(cli):
    result = cli("wait", "--json")

    document = json.loads(result.stdout)
    assert document["ready"] is True
    assert document["attempts"] == 1
    assert document["needs_upgrade"] is False


def test_wait_times_out_on_a_closed_port():
    url = f"http://127.0.0.1:{free_port()}/plone"
    started = time.monotonic()

    result = plone_upgrade(
        "wait", "--timeout", "1", "--interval", "0.2", "--json", "--url", url
    )

    assert 1 <= time.monotonic() - started < 8
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        f"Error: {url} did not answer within 1 s ("
    )
    assert f"Waiting for {url}: Cannot connect" in result.stderr
    document = json.loads(result.stdout)
    assert document["ready"] is False
    assert document["last_error"]["type"] == "ConnectionError"


def test_wait_until_the_site_appears(fake):
    answers = iter([(404, {}), (503, {}), (200, UP_TO_DATE)])
    fake.routes[("GET", "/plone/@upgrade")] = lambda: next(answers)

    result = fake_cli(fake, "wait", "--interval", "0.1", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["attempts"] == 3


def test_wait_gives_up_at_once_on_a_wrong_password(cli):
    result = cli("wait", "--timeout", "30", PLONE_PASSWORD="wrong")

    assert result.returncode == 2
    assert "Unauthorized (HTTP 401)" in one_line(result.stderr)


# -- plan --------------------------------------------------------------------------


def test_plan(cli, rewind, api):
    rewind({BASE: "1000", CORE: OLD})
    steps = core_steps(api)
    core = len(steps)

    result = cli("plan")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{CORE} (core): Plone Site, {OLD} -> {FS}, {core} pending steps"
    assert lines[1].split() == ["STEP", "ID", "VERSIONS", "PROPOSED", "TITLE"]
    first = steps[0]
    assert lines[2].split()[1:4] == [first["source"], "->", first["dest"]]
    assert lines[2].rstrip().endswith(first["title"])
    header = f"{BASE}: Upgrade API test: base add-on, 1000 -> 1003, 4 pending steps"
    assert header in lines
    assert "Base: re-import the registry" in lines[-3]
    assert lines[-1] == f"{core + 4} pending steps in 2 profiles."


def test_plan_one_profile(cli, rewind):
    rewind({BASE: "1000", CORE: OLD})

    result = cli("plan", "--profile", BASE, "--json")

    document = json.loads(result.stdout)
    assert [p["id"] for p in document["profiles"]] == [BASE]
    assert len(pending_ids(document, BASE)) == 4


def test_plan_up_to_date(cli):
    result = cli("plan", "--profile", BASE)

    assert result.returncode == 0
    assert result.stdout == f"Nothing to upgrade: profile {BASE} is up to date.\n"


def test_plan_unknown_profile(cli):
    result = cli("plan", "--profile", "no.such:default")

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "Error: Bad request (HTTP 400): Unknown profile id: no.such:default."
    )


# -- run ---------------------------------------------------------------------------


def test_run_profile(cli, rewind, snapshot):
    rewind({BASE: "1000", DEPENDENT: "2000"})

    result = cli("run", "--profile", BASE)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["STATUS", "TIME", "PROFILE", "VERSIONS", "TITLE"]
    assert [line.split()[0] for line in lines[1:5]] == ["done"] * 4
    assert lines[-1].startswith("Upgrade finished in ")
    assert lines[-1].endswith(": 4 steps committed.")
    assert result.stderr.endswith(f": {BASE}...\n")
    after = snapshot()
    assert after["versions"][BASE] == ("1003",)
    assert after["versions"][DEPENDENT] == ("2000",)
    assert after["markers"] == ["base-1001-a", "base-1001-b", "base-1002"]


def test_run_all_json(cli, rewind, snapshot):
    rewind({BASE: "1000", DEPENDENT: "2000"})

    result = cli("run", "--all", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["committed"] is True
    assert {step["profile"] for step in document["steps"]} == {BASE, DEPENDENT}
    assert snapshot()["versions"][DEPENDENT] == ("2002",)


def test_run_steps(cli, rewind, snapshot):
    rewind({BASE: "1000"})
    plan = json.loads(cli("plan", "--json").stdout)
    first, second, *_ = pending_ids(plan, BASE)

    result = cli("run", "--step", first, "--step", second, "--json")

    assert result.returncode == 0, result.stderr
    assert [step["id"] for step in json.loads(result.stdout)["steps"]] == [
        first,
        second,
    ]
    assert snapshot()["versions"][BASE] == ("1001",)


def test_dry_run_changes_nothing(cli, rewind, snapshot, api):
    rewind({BASE: "1000", CORE: OLD})
    core = len(core_steps(api))
    before = snapshot()

    result = cli("run", "--all", "--dry-run", "--report")

    assert result.returncode == 0, result.stderr
    assert snapshot() == before
    assert "Dry run finished in " in result.stdout
    assert f": {core + 4} steps ran; nothing was committed." in result.stdout
    assert "Report:" in result.stdout
    assert "Test step base-1001-a ran." in result.stdout


def test_dry_run_prints_what_it_would_change(cli, rewind, snapshot):
    rewind({BASE: "1000"})
    before = snapshot()

    plan = cli("run", "--profile", BASE, "--dry-run")
    quiet = cli("run", "--profile", BASE, "--dry-run", "--no-changes")

    assert plan.returncode == quiet.returncode == 0, plan.stderr + quiet.stderr
    assert snapshot() == before
    changes = plan.stdout.split("Changes:\n", 1)[1].split("\n\n", 1)[0]
    # Per step, as a plan: what the registry re-import step runs, and a step
    # whose work is none of the categories the report covers.
    assert (
        "Base: re-import the registry\n"
        f"  ~ import steps {BASE}: plone.app.registry" in changes
    )
    assert "Base: a single step\n    (no change)" in changes
    assert "Changes:" not in quiet.stdout
    assert "\033[" not in changes  # no colour when stdout is no terminal


def test_dry_run_json(cli, rewind, snapshot):
    rewind({CORE: OLD})
    before = snapshot()

    result = cli("run", "--dry-run", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["dry_run"] is True
    assert document["committed"] is False
    assert document["versions"] == {"fs": FS, "instance": OLD}
    assert snapshot() == before


def test_run_core(cli, rewind, snapshot):
    rewind({CORE: OLD, BASE: "1000"})

    result = cli("run")

    assert result.returncode == 0, result.stderr
    assert "Plone's core upgrade..." in result.stderr
    after = snapshot()
    assert after["versions"][CORE] == (FS,)
    assert after["versions"][BASE] == ("1000",)
    assert cli("check").returncode == 1, "the add-on is still pending"


def test_nothing_to_run(cli, snapshot):
    before = snapshot()

    result = cli("run", "--all")

    assert result.returncode == 0
    assert result.stdout == "Nothing to upgrade: no pending steps in this selection.\n"
    assert snapshot() == before


def test_failing_step(cli, rewind, snapshot):
    rewind({BASE: "1000", BROKEN: "3000"})
    before = snapshot()

    result = cli("run", "--all")

    assert result.returncode == 1
    assert snapshot() == before
    out = result.stdout
    statuses = [line.split()[0] for line in out.splitlines()[1:7]]
    assert statuses == ["done"] * 5 + ["failed"]
    assert f"Failed step: 'Broken: a step that raises' (profile {BROKEN}, id " in out
    assert "Error: RuntimeError: This test step fails on purpose." in out
    assert "Traceback (most recent call last):" in out
    assert "\nReport:\n" in out
    assert "Test step broken-3002 ran." in out
    assert out.endswith("Upgrade failed; nothing was committed.\n")
    assert one_line(result.stderr).startswith(
        "Error: The upgrade failed at step 'Broken: a step that raises'"
    )


def test_failing_step_json(cli, rewind, snapshot):
    rewind({BROKEN: "3000"})
    before = snapshot()

    result = cli("run", "--profile", BROKEN, "--dry-run", "--json")

    assert result.returncode == 1
    assert snapshot() == before
    document = json.loads(result.stdout)
    assert document["type"] == "UpgradeFailed"
    assert document["failed_step"]["error"]["type"] == "RuntimeError"
    assert [step["status"] for step in document["steps"]] == ["done", "failed"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--all", "--profile", BASE], "Give either --all or --profile, not both."),
        (["--all", "--step", "x"], "Give either --step or --profile/--all, not both."),
        (["--login", "--user", ""], "--login needs --user (or PLONE_USER)."),
        (["--mark-done"], "--mark-done records chosen steps as done"),
        (["--mark-done", "--all"], "(not --all)"),
        (["--commit", "all"], "Invalid value for '--commit'"),
    ],
)
def test_run_usage_errors(args, message):
    url = f"http://127.0.0.1:{free_port()}/plone"

    result = plone_upgrade("run", "--url", url, *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_run_unknown_profile(cli, rewind, snapshot):
    rewind({BASE: "1000"})
    before = snapshot()

    result = cli("run", "--profile", "no.such:default", "--json")

    assert result.returncode == 2
    assert snapshot() == before
    assert json.loads(result.stdout)["unknown_profiles"] == ["no.such:default"]
    assert one_line(result.stderr).startswith(
        "Error: Bad request (HTTP 400): Unknown profile id(s): no.such:default."
    )


def test_run_unknown_step(cli, rewind):
    rewind({BASE: "1000"})

    result = cli("run", "--step", "nope")

    assert result.returncode == 2
    assert "Unknown or not pending step id(s): nope." in one_line(result.stderr)


# -- run --commit, --mark-done -----------------------------------------------------


def test_commit_per_profile_keeps_what_was_committed(cli, rewind, snapshot):
    rewind({BASE: "1000", BROKEN: "3000"})

    result = cli("run", "--profile", BASE, "--profile", BROKEN, "--commit", "profile")

    assert result.returncode == 1
    state = snapshot()
    assert state["versions"][BASE] == ("1003",), "the base profile stays committed"
    assert state["versions"][BROKEN] == ("3000",), "the failing profile is aborted"
    assert state["markers"] == ["base-1001-a", "base-1001-b", "base-1002"]
    assert result.stderr.startswith(
        f"Upgrade of {cli.url}: {BASE}, {BROKEN}, one transaction per profile...\n"
    )
    out = result.stdout
    assert "Failed step: 'Broken: a step that raises'" in out
    committed = out[out.index("Committed before the failure (these stay):") :]
    lines = committed.splitlines()
    assert lines[1].startswith(f"  {BASE}: 4 steps (transaction 0x")
    assert lines[2:6] == [
        "    Base: first step of a group",
        "    Base: second step of a group",
        "    Base: a single step",
        "    Base: re-import the registry",
    ]
    assert lines[-1] == (
        "Upgrade failed; the failing profile was aborted, what was committed "
        "before it stays (1 transaction). Run the same command again to continue "
        "from there."
    )
    assert "nothing was committed" not in out
    assert "what was committed before it stays (see 'commits': " in one_line(
        result.stderr
    )

    rerun = cli("run", "--profile", BASE, "--profile", BROKEN, "--commit", "profile")

    assert rerun.returncode == 1
    statuses = [line.split()[:3] for line in rerun.stdout.splitlines()[1:3]]
    assert statuses[0][0] == "done" and statuses[0][2] == BROKEN
    assert statuses[1][0] == "failed", "the committed profile did not run again"
    assert snapshot() == state


def test_commit_per_step_json(cli, rewind, snapshot):
    rewind({BROKEN: "3000"})

    result = cli("run", "--profile", BROKEN, "--commit", "step", "--json")

    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert (document["commit"], document["committed"]) == ("step", True)
    assert len(document["commits"]) == 1
    assert document["commits"][0]["steps"] == [document["steps"][0]["id"]]
    assert snapshot()["versions"][BROKEN] == ("3001",)


def test_commit_per_profile_success(cli, rewind, snapshot):
    rewind({BASE: "1000", DEPENDENT: "2000"})

    result = cli("run", "--all", "--commit", "profile")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(
        ": 5 steps committed in 2 transactions."
    )
    assert snapshot()["versions"][DEPENDENT] == ("2002",)


def test_mark_done_steps(cli, rewind, snapshot):
    rewind({BASE: "1000"})
    plan = json.loads(cli("plan", "--json").stdout)
    first, second, *_ = pending_ids(plan, BASE)

    result = cli("run", "--step", first, "--step", second, "--mark-done")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["marked_done"] * 2
    assert lines[-1].startswith("Done in ")
    assert lines[-1].endswith(": 2 steps marked done without running them; committed.")
    assert "marking steps done without running them..." in result.stderr
    state = snapshot()
    assert state["versions"][BASE] == ("1001",)
    assert state["markers"] == [], "no step ran"


def test_mark_done_a_profile_json(cli, rewind, snapshot):
    rewind({BASE: "1000"})

    result = cli("run", "--profile", BASE, "--mark-done", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {step["status"] for step in document["steps"]} == {"marked_done"}
    state = snapshot()
    assert state["versions"][BASE] == ("1003",)
    assert state["markers"] == []


def test_mark_done_refused_for_steps_not_pending(cli, rewind, snapshot):
    rewind({BASE: "1000"})
    before = snapshot()

    result = cli("run", "--step", "nope", "--mark-done")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith("Error: Bad request (HTTP 400): ")
    assert snapshot() == before


def test_mark_done_needs_its_permission(cli, site, rewind, snapshot):
    site.manage_permission("Manage portal", ["Manager", "Site Administrator"], 0)
    setRoles(site, TEST_USER_ID, ["Site Administrator"])
    transaction.commit()
    rewind({BASE: "1000"})
    before = snapshot()
    as_admin = {"PLONE_USER": TEST_USER_NAME, "PLONE_PASSWORD": TEST_USER_PASSWORD}

    result = cli("run", "--profile", BASE, "--mark-done", **as_admin)

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        "Error: Forbidden (HTTP 403): Recording steps as done without running "
        "them needs the permission 'collective.upgradeapi: Mark upgrade steps "
        "done'"
    )
    assert snapshot() == before


def test_run_posts_commit_and_mark_done(fake):
    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("POST", "/plone/@upgrade")] = (200, fake_run_answer(0))

    fake_cli(fake, "run", "--all", "--commit", "step")
    fake_cli(fake, "run", "--step", "1", "--mark-done", "--commit", "run")
    fake_cli(fake, "run", "--hold-writes", "--no-changes")
    fake_cli(fake, "run", "--dry-run", "--no-hold-writes", "--changes")

    bodies = [json.loads(body) for method, _, body in fake.seen if method == "POST"]
    assert bodies == [
        {"dry_run": False, "profiles": "all", "commit": "step"},
        {"dry_run": False, "steps": ["1"], "commit": "run", "mark_done": True},
        {"dry_run": False, "changes": False, "hold_writes": True},
        {"dry_run": True, "changes": True, "hold_writes": False},
    ]


# -- stamp -------------------------------------------------------------------------


def test_stamp_a_downgraded_profile(cli, rewind, snapshot, api):
    rewind({BASE: "1005"})
    assert "database records a newer version" in cli("check").stderr

    result = cli("stamp", BASE)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Stamped {BASE} at version 1003 (was 1005)."
    assert lines[3].split() == [BASE, "1005", "->", "1003", "1003"]
    assert lines[-1].startswith("Recorded as run ")
    assert result.stderr == f"Stamp on {cli.url}: {BASE}...\n"
    state = snapshot()
    assert state["versions"][BASE] == ("1003",)
    assert state["markers"] == []
    assert api.get("/@upgrade/history/1").json()["selection"]["stamp"] == [BASE]


def test_stamp_json(cli, rewind):
    rewind({BASE: "1005"})

    result = cli("stamp", f"profile-{BASE}", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["profiles"] == [
        {"id": BASE, "versions": {"before": "1005", "after": "1003", "fs": "1003"}}
    ]


@pytest.mark.parametrize(
    "profile, message",
    [
        (BASE, "Profile(s) not downgraded: "),
        ("no.such:default", "Unknown profile id(s): no.such:default"),
    ],
)
def test_stamp_refused(cli, rewind, snapshot, profile, message):
    rewind({BASE: "1003"})
    before = snapshot()

    result = cli("stamp", profile, "--json")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        f"Error: Bad request (HTTP 400): {message}"
    )
    assert json.loads(result.stdout)["status"] == 400
    assert snapshot() == before


def test_stamp_while_locked(cli, rewind, snapshot):
    rewind({BASE: "1005"})
    plant_lock(cli.site, age=0)
    before = snapshot()

    result = cli("stamp", BASE)

    assert result.returncode == 2
    assert one_line(result.stderr).startswith("Error: Conflict (HTTP 409): ")
    assert snapshot() == before


def test_stamp_needs_a_profile():
    url = f"http://127.0.0.1:{free_port()}/plone"

    result = plone_upgrade("stamp", "--url", url)

    assert result.returncode == 2
    assert "Missing argument 'PROFILE...'" in result.stderr
    assert result.stdout == ""


# -- progress ----------------------------------------------------------------------


def test_run_shows_progress(cli, rewind, gates, snapshot):
    """While the run waits at each gate, the current step shows on stderr."""
    rewind({SLOW: "5000"})
    process = cli("run", "--profile", SLOW, "--status-interval", "0.1", background=True)
    watchdog = threading.Timer(20, lambda: [slow.open_gate(gates, n) for n in "123"])
    watchdog.start()
    try:
        seen = []
        for line in process.stderr:
            seen.append(line.rstrip("\n"))
            for number in "123":
                if line.startswith(f"  [{number}/3] "):
                    slow.open_gate(gates, number)
        stdout = process.stdout.read()
        assert process.wait(timeout=30) == 0, seen
    finally:
        watchdog.cancel()
        process.stdout.close()
        process.stderr.close()

    assert seen == [
        f"Upgrade of {cli.url}: {SLOW}...",
        f"  [1/3] Slow: first step ({SLOW})",
        f"  [2/3] Slow: second step ({SLOW})",
        f"  [3/3] Slow: third step ({SLOW})",
    ]
    assert "Upgrade finished in " in stdout
    assert snapshot()["versions"][SLOW] == ("5003",)


def test_progress_lines(fake):
    started = []

    def run():
        started.append(time.monotonic())
        time.sleep(1.2)
        return 200, fake_run_answer(3)

    def status():
        if not started:
            return 200, {
                "state": "idle",
                "current_step": None,
                "steps_done": None,
                "steps_total": None,
            }
        done = min(int((time.monotonic() - started[0]) / 0.4), 2)
        return 200, {
            "state": "running",
            "current_step": {"id": f"s{done}", "title": f"Step {done}"},
            "steps_done": done,
            "steps_total": 3,
            "stale": done == 2,
        }

    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("POST", "/plone/@upgrade")] = run
    fake.routes[("GET", "/plone/@upgrade/status")] = status

    result = fake_cli(fake, "run", "--all", "--status-interval", "0.1")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[1:] == [
        "  [1/3] Step 0",
        "  [2/3] Step 1",
        "  [3/3] Step 2 (no sign of life from the server for a while)",
    ]
    assert "Upgrade finished in 1.0 s: 3 steps committed." in result.stdout


def fake_slow_run(fake):
    """A run of 3 steps for 1.2 s; its status moves a step every 0.4 s."""
    started = []

    def run():
        started.append(time.monotonic())
        time.sleep(1.2)
        return 200, fake_run_answer(3)

    def status():
        if not started:
            return 200, {
                "state": "idle",
                "current_step": None,
                "steps_done": None,
                "steps_total": None,
            }
        done = min(int((time.monotonic() - started[0]) / 0.4), 2)
        return 200, {
            "state": "running",
            "current_step": {"id": f"s{done}", "title": f"Step {done}"},
            "steps_done": done,
            "steps_total": 3,
            "progress": int(100 * done / 3),
        }

    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("POST", "/plone/@upgrade")] = run
    fake.routes[("GET", "/plone/@upgrade/status")] = status


def on_a_terminal(fake, *args):
    """Run ``plone-upgrade`` with stderr on a pseudo-terminal; return
    ``(exit code, stdout, what the terminal got)``."""
    import pty

    leader, follower = pty.openpty()
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PLONE_")
    }
    environment.update(
        {"PLONE_URL": fake.url, "PLONE_USER": "admin", "PLONE_PASSWORD": "x"}
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "plone_upgrade", *args],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    drawn = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    stdout = process.stdout.read().decode()
    process.stdout.close()
    return process.wait(timeout=30), stdout, drawn.decode()


def test_progress_bar_on_a_terminal(fake):
    fake_slow_run(fake)

    code, stdout, drawn = on_a_terminal(
        fake, "run", "--all", "--status-interval", "0.1"
    )

    assert code == 0, drawn
    assert drawn.startswith(f"Upgrade of {fake.url}: every profile with pending ")
    frames = [frame.rstrip() for frame in drawn.split("\r") if frame.strip()][1:]
    assert frames[0] == "[....................]   0%  0/3  Step 0"
    assert "[#######.............]  33%  1/3  Step 1" in frames
    assert "[#############.......]  67%  2/3  Step 2" in frames
    assert frames[-1] == "[####################] 100%  3/3  done"
    assert drawn.endswith("\r\n"), "the bar's line is ended"
    assert "[1/3]" not in drawn, "no plain lines on a terminal"
    assert "Upgrade finished in 1.0 s: 3 steps committed." in stdout


def test_no_progress_bar_with_json_on_a_terminal(fake):
    fake_slow_run(fake)

    code, stdout, drawn = on_a_terminal(
        fake, "run", "--all", "--status-interval", "0.1", "--json"
    )

    assert code == 0, drawn
    assert "\r[" not in drawn
    assert "  [1/3] Step 0" in drawn
    assert json.loads(stdout)["committed"] is True


class FakeTerminal:
    """A stream that says it is a terminal and keeps what is written."""

    def __init__(self):
        self.written = []

    def isatty(self):
        return True

    def write(self, text):
        self.written.append(text)

    def flush(self):
        pass


def test_progress_bar_renderer():
    from plone_upgrade.door import Output
    from plone_upgrade.text import is_terminal
    from plone_upgrade.text import Progress

    stream = FakeTerminal()
    assert is_terminal(stream)
    bar = Progress(Output(as_json=False), stream, columns=80)
    step = {"title": "A long title of a step", "profile": "my.addon:default"}

    bar({"state": "running", "current_step": step, "steps_done": 1, "steps_total": 4})
    bar({"state": "committing", "steps_done": 4, "steps_total": 4, "stale": True})
    bar({"state": "running", "progress": 50})
    bar.end({"steps_done": 3, "steps_total": 4, "state": "failed"})

    assert stream.written == [
        "\r[#####...............]  25%  1/4  A long title of a step (my.addon:default)",
        "\r[####################] 100%  4/4  committing (no sign of life from the "
        "server)",
        "\r[##########..........]  50%" + " " * 51,
        "\r[###############.....]  75%  3/4  failed",
        "\n",
    ]


def test_progress_bar_fits_the_terminal():
    from plone_upgrade.door import Output
    from plone_upgrade.text import Progress

    stream = FakeTerminal()
    bar = Progress(Output(as_json=False), stream, columns=40)

    bar({"current_step": {"title": "x" * 100}, "steps_done": 0, "steps_total": 2})

    assert stream.written == ["\r[....................]   0%  0/2  xxxxx"]


def test_progress_bar_draws_nothing_for_an_empty_run():
    from plone_upgrade.door import Output
    from plone_upgrade.text import Progress

    stream = FakeTerminal()
    Progress(Output(as_json=False), stream).end({"steps_done": 0, "steps_total": 0})

    assert stream.written == []


@pytest.mark.parametrize(
    "status",
    [
        (404, {"type": "NotFound"}),
        (200, {"state": "running"}),
        (500, {"type": "Error"}),
    ],
)
def test_run_without_a_usable_status_service(fake, status):
    def run():
        time.sleep(1.2)
        return 200, fake_run_answer(1)

    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("POST", "/plone/@upgrade")] = run
    fake.routes[("GET", "/plone/@upgrade/status")] = status

    result = fake_cli(fake, "run")

    assert result.returncode == 0, result.stderr
    assert result.stderr == f"Upgrade of {fake.url}: Plone's core upgrade...\n"
    polls = [path for _, path, _ in fake.seen if path.endswith("/status")]
    assert len(polls) == 1, "a missing status service is asked once"


def test_run_posts_the_selection(fake):
    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("POST", "/plone/@upgrade")] = (200, fake_run_answer(0))

    fake_cli(fake, "run", "--dry-run", "--profile", "a:default", "--profile", "b:b")
    fake_cli(fake, "run", "--all", "--no-progress")
    fake_cli(fake, "run", "--step", "1", "--step", "2")

    bodies = [json.loads(body) for method, _, body in fake.seen if method == "POST"]
    assert bodies == [
        {"dry_run": True, "profiles": ["a:default", "b:b"]},
        {"dry_run": False, "profiles": "all"},
        {"dry_run": False, "steps": ["1", "2"]},
    ]


def test_run_is_not_redirected(fake):
    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("POST", "/plone/@upgrade")] = (301, {})

    result = fake_cli(fake, "run")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        f"Error: {fake.url}/@upgrade redirects to another address (HTTP 301); "
    )


def test_run_conflict(fake):
    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("POST", "/plone/@upgrade")] = (
        409,
        {"type": "Locked", "message": "An upgrade is running since 12:00 (admin)."},
    )

    result = fake_cli(fake, "run", "--json")

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "Error: Conflict (HTTP 409): An upgrade is running since 12:00 (admin)."
    )
    assert json.loads(result.stdout)["status"] == 409


# -- history -----------------------------------------------------------------------


def test_history(cli, rewind):
    rewind({BASE: "1000"})
    assert cli("run", "--profile", BASE, "--dry-run").returncode == 0
    rewind({BROKEN: "3000"})
    assert cli("run", "--profile", BROKEN).returncode == 1

    result = cli("history")

    assert result.returncode == 0, result.stderr
    header, failed, dry_run, error = result.stdout.splitlines()
    assert header.split() == [
        "ID",
        "STARTED",
        "USER",
        "KIND",
        "RESULT",
        "TIME",
        "DONE",
        "SELECTION",
    ]
    run_id, _, *cells = failed.split()
    assert (run_id, cells[:3], cells[4:]) == (
        "2",
        ["admin", "run", "failed"],
        ["1/2", BROKEN],
    )
    run_id, _, *cells = dry_run.split()
    assert (run_id, cells[:4], cells[5:]) == (
        "1",
        ["admin", "dry", "run", "success"],
        ["4/4", BASE],
    )
    assert error == (
        "Run 2: RuntimeError at step 'Broken: a step that raises' "
        f"({BROKEN}): This test step fails on purpose."
    )


def test_history_json_and_limit(cli, rewind):
    rewind({BASE: "1000"})
    for _ in range(2):
        assert cli("run", "--profile", BASE, "--dry-run").returncode == 0

    result = cli("history", "--limit", "1", "--json")

    document = json.loads(result.stdout)
    assert document["items_total"] == 2
    assert [item["id"] for item in document["items"]] == [2]
    text = cli("history", "--limit", "1").stdout
    assert text.endswith("(1 of 2 runs; --limit shows more.)\n")


def test_history_of_one_run(cli, rewind):
    rewind({BROKEN: "3000"})
    assert cli("run", "--profile", BROKEN, "--dry-run").returncode == 1

    result = cli("history", "1", "--report")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Run 1: dry run of {BROKEN} by admin"
    assert lines[3] == "Result:    failed, nothing committed"
    assert lines[4].startswith("Error:     RuntimeError at step 'Broken: a step")
    assert [line.split()[0] for line in lines[6:9]] == ["STATUS", "done", "failed"]
    assert "Report:" in lines
    assert "INFO collective.upgradeapi.testing: Test step broken-3002 ran." in lines


def test_history_of_an_unknown_run(cli):
    result = cli("history", "7")

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "Error: Not found (HTTP 404): There is no upgrade run '7' in the "
        "history. GET @upgrade/history lists the recorded runs."
    )


def test_empty_history(cli):
    result = cli("history")

    assert result.returncode == 0
    assert result.stdout == "No upgrade run is recorded on this site.\n"


def test_no_history_service(fake):
    result = fake_cli(fake, "history", "--json")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        f"Error: This server has no upgrade history (HTTP 404 from {fake.url}"
    )
    assert json.loads(result.stdout)["status"] == 404


# -- unlock and cancel ----------------------------------------------------------


def plant_lock(site, age, host="zope-2.elsewhere.example.org", user="ghost"):
    """Commit a lock held from ``host``, last seen ``age`` seconds ago."""
    from collective.upgradeapi.tracking.publishing import side_connection
    from collective.upgradeapi.tracking.store import now

    seen = now() - age
    holder = {"host": host, "pid": 7, "started": seen - 60, "boot": "b"}

    def change(records):
        run_id = records.start(user, False, {"profiles": [SLOW]}, 3)
        lock = {"token": "t", "user": user, "since": seen, "dry_run": False}
        records.set("lock", {**lock, "holder": holder})
        progress = {"token": "t", "run_id": run_id, "started": seen}
        records.set("progress", {**progress, "current_step": None, "updated": seen})
        return run_id

    with side_connection(site) as side:
        return side.transact(change)


def test_unlock_without_a_lock(cli):
    result = cli("unlock")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "There is no upgrade lock: nothing to break.\n"
    assert json.loads(cli("unlock", "--json").stdout)["lock"] is None


def test_unlock_a_stale_lock(cli, api):
    run_id = plant_lock(cli.site, age=3600)

    result = cli("unlock")

    assert result.returncode == 0, result.stderr
    described, message = result.stdout.splitlines()
    assert described.startswith(f"Upgrade (run {run_id}) by ghost since ")
    assert "process 7 on zope-2.elsewhere.example.org" in described
    assert described.endswith(": stale (no heartbeat).")
    assert message.startswith("The upgrade lock was broken by admin")
    assert api.get("/@upgrade/lock").json()["lock"] is None
    run = api.get(f"/@upgrade/history/{run_id}").json()
    assert (run["result"], run["error"]["type"]) == ("abandoned", "LockBroken")
    assert "broken by admin" in run["error"]["message"]


def test_unlock_refuses_a_live_lock(cli, api):
    plant_lock(cli.site, age=0)

    result = cli("unlock")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        "Error: Conflict (HTTP 409): The upgrade lock held by ghost is alive"
    )
    assert api.get("/@upgrade/lock").json()["lock"]["cancel_requested"] is None

    result = cli("unlock", "--force", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["broken"] is False
    assert document["lock"]["cancel_requested"]["user"] == SITE_OWNER_NAME
    assert api.get("/@upgrade/lock").json()["lock"] is not None


def test_cancel_a_run_and_wait(cli, api, rewind, gates, snapshot):
    rewind({SLOW: "5000"})
    before = snapshot()
    session = requests.Session()
    session.auth = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    session.headers["Accept"] = "application/json"
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            session.post, f"{cli.url}/@upgrade", json={"profiles": [SLOW]}
        )
        deadline = time.monotonic() + 30
        while (api.get("/@upgrade/status").json().get("current_step") or {}).get(
            "title"
        ) != "Slow: first step":
            assert time.monotonic() < deadline
            time.sleep(0.05)

        waiting = cli("cancel", "--wait", "30", background=True)
        deadline = time.monotonic() + 30
        while not api.get("/@upgrade/lock").json()["lock"]["cancel_requested"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        slow.open_gate(gates, "1")
        stdout, stderr = waiting.communicate(timeout=60)
        response = future.result(timeout=60)
    session.close()

    assert waiting.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("Upgrade (run 1) by admin since ")
    assert lines[1].startswith("admin asked the run of admin to cancel.")
    assert lines[2] == "The run stopped; the lock is free."
    assert "Waiting up to 30 s for the run to stop..." in stderr
    assert response.status_code == 409
    assert response.json()["type"] == "Cancelled"
    assert snapshot() == before
    run = api.get("/@upgrade/history/1").json()
    assert (run["result"], run["error"]["user"]) == ("cancelled", SITE_OWNER_NAME)
    assert "cancelled" in cli("history").stdout


def test_cancel_without_a_run(cli):
    result = cli("cancel")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "No upgrade is running: nothing to cancel.\n"


def test_cancel_wait_runs_out(cli):
    plant_lock(cli.site, age=0)

    result = cli("cancel", "--wait", "1")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        "Error: The run still holds the lock after 1 s"
    )


def test_no_lock_service(fake):
    result = fake_cli(fake, "unlock", "--json")

    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        f"Error: This server has no upgrade lock service (HTTP 404 from {fake.url}"
    )
    assert json.loads(result.stdout)["status"] == 404


def test_credentials_in_the_url_are_used_and_never_shown(cli):
    """``http://user:password@host/site`` works, and no message repeats it."""
    good = cli.url.replace("://", f"://{SITE_OWNER_NAME}:{SITE_OWNER_PASSWORD}@")
    wrong = cli.url.replace("://", f"://{SITE_OWNER_NAME}:s3cret-wrong@")
    nowhere = "http://admin:s3cret-nowhere@127.0.0.1:9/plone"
    unset = {"PLONE_USER": None, "PLONE_PASSWORD": None}

    ok = cli("check", PLONE_URL=good, **unset)
    refused = cli("check", PLONE_URL=wrong, **unset)
    unreachable = cli("check", "--json", PLONE_URL=nowhere, **unset)

    assert ok.returncode == 0, ok.stderr
    assert SITE_OWNER_PASSWORD not in ok.stdout + ok.stderr
    assert refused.returncode == 2
    assert "s3cret-wrong" not in refused.stdout + refused.stderr
    assert unreachable.returncode == 2
    assert "s3cret-nowhere" not in unreachable.stdout + unreachable.stderr
    assert "127.0.0.1:9/plone" in unreachable.stderr


# -- content named @upgrade, other @upgrade services ------------------------------


@pytest.fixture
def shadow(site):
    """A folder ``@upgrade`` at the site root, with Documents ``lock`` and
    ``run``, answering in the services' place: what ``GET @upgrade``, ``GET
    @upgrade/lock`` and the DELETEs of ``unlock`` and ``cancel`` reach.

    This package's guard makes the services win over such content; it is
    taken away here, as on a server where the guard is missing or fails. The
    content is added without events, which the guard would refuse.
    """
    from collective.upgradeapi.services import guard
    from plone.dexterity.utils import createContent
    from zope.component import getGlobalSiteManager

    registry = getGlobalSiteManager()
    assert registry.unregisterAdapter(guard.SiteRootTraverse)
    folder = createContent("Folder", id="@upgrade", title="Shadow")
    site._setObject("@upgrade", folder, suppress_events=True)
    for name in ("lock", "run"):
        document = createContent("Document", id=name, title=name)
        site["@upgrade"]._setObject(name, document, suppress_events=True)
    transaction.commit()

    def state():
        transaction.begin()
        folder = site.get("@upgrade")
        children = {k: (v.Title(), v.modified()) for k, v in folder.objectItems()}
        return folder.Title(), folder.modified(), children

    yield state
    registry.registerAdapter(guard.SiteRootTraverse)
    transaction.begin()
    site._delObject("@upgrade", suppress_events=True)
    transaction.commit()


@pytest.mark.parametrize(
    "args",
    [
        ["unlock"],
        ["unlock", "--force"],
        ["cancel"],
        ["run", "--all"],
        ["run", "--profile", BASE, "--dry-run"],
        ["stamp", BASE],
    ],
)
def test_content_named_upgrade_gets_no_delete_or_post(cli, shadow, snapshot, args):
    before, database = shadow(), snapshot()

    result = cli(*args, "--json")

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: GET {cli.url}/@upgrade answered a Folder ('Shadow'), not the "
        "upgrade service: content named @upgrade shadows it. Nothing was changed; "
        "rename or remove that content."
    )
    assert json.loads(result.stdout)["type"] == "NotUpgradeService"
    assert shadow() == before, "the content is unchanged: nothing was deleted"
    assert snapshot() == database


@pytest.mark.parametrize("command", ["check", "plan", "history"])
def test_content_named_upgrade_is_named_by_reading_commands(cli, shadow, command):
    result = cli(command)

    assert result.returncode == 2
    assert "answered a Folder ('Shadow'), not the upgrade service" in one_line(
        result.stderr
    )


@pytest.mark.parametrize("args", [["run"], ["stamp", "x:y"], ["cancel"]])
def test_an_older_addon_gets_no_post_or_delete(fake, args):
    """A service without the header: nothing that writes is sent to it."""
    fake.addon = False
    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("GET", "/plone/@upgrade/lock")] = (200, {"lock": {"user": "x"}})

    result = fake_cli(fake, *args)

    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"Error: {fake.url}/@upgrade answers without X-Upgrade-Service: the "
        "collective.upgradeapi installed there is older than this client."
    )
    assert {method for method, _, _ in fake.seen} == {"GET"}


def test_the_service_is_checked_once_per_session(fake):
    """``run`` checks GET @upgrade once, then posts; the answer's header counts."""
    fake.routes[("GET", "/plone/@upgrade")] = (200, UP_TO_DATE)
    fake.routes[("POST", "/plone/@upgrade")] = (200, fake_run_answer(1))

    result = fake_cli(fake, "run", "--no-progress")

    assert result.returncode == 0, result.stderr
    assert [(method, path) for method, path, _ in fake.seen] == [
        ("GET", "/plone/@upgrade"),
        ("POST", "/plone/@upgrade"),
    ]
