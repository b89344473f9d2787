"""A throwaway PostgreSQL server for tests: made, started, stopped, removed.

The fixture :func:`postgresql` runs ``initdb`` in a temporary directory, starts
the server with ``pg_ctl`` on a free loopback port (password authentication,
durability off: the data is thrown away), creates the database ``zodb`` and
yields a :class:`Server`. At the end of the session the server is stopped and
the directory removed.

PostgreSQL's server programs are looked for on ``PATH``, then in
``/usr/lib/postgresql/<major>/bin`` (where Debian puts them;
``scripts/ensure-postgresql.sh`` installs Debian's package). PostgreSQL refuses
to run as root: as root the server runs as the ``postgres`` user, which owns
the temporary directory.

Without PostgreSQL or the ``pg8000`` driver the tests that use the fixture
skip, except when ``CI=true``: then they fail, because CI must run them.
"""

from dataclasses import dataclass
from pathlib import Path

import os
import pwd
import pytest
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile


SERVER_USER = "postgres"
DATABASE = "zodb"
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # Throwaway data: no need to wait for the disk.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}


def unavailable(reason):
    """Skip, or fail when ``CI=true`` (in CI these tests must run)."""
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{reason} CI=true: the PostgreSQL tests must run here "
            "(scripts/ensure-postgresql.sh installs PostgreSQL as root).",
            pytrace=False,
        )
    pytest.skip(reason)


def _major(bin_dir):
    match = re.fullmatch(r"\d+(\.\d+)?", bin_dir.parent.name)
    return float(match.group()) if match else -1.0


def server_programs():
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None``."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major)
    for bin_dir in reversed(candidates):
        if os.access(bin_dir / "initdb", os.X_OK) and os.access(
            bin_dir / "pg_ctl", os.X_OK
        ):
            return bin_dir
    return None


def as_server_user():
    """The command prefix that runs a program as the server's user.

    Nothing when not root; as root ``runuser`` (or ``su``) to ``postgres``.

    :returns: a function turning an argument list into the one to run.
    """
    if os.geteuid() != 0:
        return list
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        unavailable(
            f"PostgreSQL refuses to run as root and there is no "
            f"{SERVER_USER!r} user to run it as."
        )
    runuser = shutil.which("runuser")
    if runuser:
        return lambda args: [runuser, "-u", SERVER_USER, "--", *args]
    return lambda args: ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(args)]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running PostgreSQL server and its test database."""

    host: str
    port: int
    user: str
    password: str
    database: str
    directory: Path

    @property
    def dsn(self):
        """The DSN RelStorage's ``<postgresql>`` section takes (space separated)."""
        return (
            f"dbname={self.database} user={self.user} password={self.password} "
            f"host={self.host} port={self.port}"
        )

    def connect(self, database=None):
        """A pg8000 native connection (autocommit); close it after use."""
        import pg8000.native

        return pg8000.native.Connection(
            self.user,
            host=self.host,
            port=self.port,
            password=self.password,
            database=database or self.database,
            timeout=30,
        )

    def query(self, sql, **params):
        """Run one SQL statement in the test database; its rows."""
        connection = self.connect()
        try:
            return connection.run(sql, **params)
        finally:
            connection.close()


def _run(args, what, cwd):
    try:
        result = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{what} timed out: {args}") from exc
    assert result.returncode == 0, (
        f"{what} failed ({result.returncode}): {args}\n{result.stdout}\n{result.stderr}"
    )


@pytest.fixture(scope="session")
def postgresql():
    """A PostgreSQL server on a free loopback port with an empty database.

    :returns: a :class:`Server`.
    """
    bin_dir = server_programs()
    if bin_dir is None:
        unavailable(
            "PostgreSQL is not installed (no initdb and pg_ctl on PATH or in "
            "/usr/lib/postgresql/*/bin); run scripts/ensure-postgresql.sh as root "
            "or install Debian's postgresql package."
        )
    try:
        import pg8000.native  # noqa: F401
    except ImportError:
        unavailable("The PostgreSQL driver pg8000 is not installed (test extra).")
    wrap = as_server_user()

    # Not under pytest's tmp_path: its parents are private to root, and the
    # server's user must reach this directory.
    directory = Path(tempfile.mkdtemp(prefix="upgradeapi-postgresql-"))
    data = directory / "data"
    log = directory / "postgresql.log"
    password = secrets.token_hex(16)
    (directory / "password").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(directory, SERVER_USER, SERVER_USER)
        shutil.chown(directory / "password", SERVER_USER, SERVER_USER)
    server = Server(
        host="127.0.0.1",
        port=free_port(),
        user="postgres",
        password=password,
        database=DATABASE,
        directory=directory,
    )
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        _run(
            wrap(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "--username",
                    server.user,
                    "--pwfile",
                    str(directory / "password"),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            ),
            "initdb",
            directory,
        )
        options = [f"-p {server.port}", f"-k {directory}"]
        options += [f"-c {name}={value}" for name, value in SETTINGS.items()]
        started = True
        try:
            _run(
                wrap(
                    [
                        *pg_ctl,
                        "-l",
                        str(log),
                        "-o",
                        " ".join(options),
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ]
                ),
                "Starting PostgreSQL",
                directory,
            )
        except AssertionError as exc:
            log_text = log.read_text(errors="replace") if log.exists() else ""
            raise AssertionError(f"{exc}\nServer log:\n{log_text}") from None
        admin = server.connect(database="postgres")
        try:
            admin.run(f"CREATE DATABASE {DATABASE}")
        finally:
            admin.close()
        yield server
    finally:
        if started:
            subprocess.run(
                wrap([*pg_ctl, "-m", "fast", "-w", "-t", "60", "stop"]),
                cwd=directory,
                capture_output=True,
                timeout=120,
            )
        shutil.rmtree(directory, ignore_errors=True)
