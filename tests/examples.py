"""HTTP examples: request/response pairs written by the functional tests.

``check_example(name, response)`` writes ``http-examples/NAME.req`` and
``NAME.resp`` normalised (port 55001, sorted 4-space JSON, volatile values
replaced by fixed stand-ins, GenericSetup's import log lines in a fixed order)
and fails when a committed file no longer matches
what the service returns. To accept new output, run the tests with
``UPDATE_EXAMPLES=1`` and commit the files. A missing file is written, except
under CI (``CI=true``), where it fails: examples must be committed.
"""

from collective.upgradeapi.compat import PLONE_VERSION
from collective.upgradeapi.testing.versions import DOCS_PLONE
from pathlib import Path
from urllib.parse import urlsplit

import contextlib
import json
import os
import re


DIRECTORY = Path(__file__).parent / "http-examples"
PORT = "55001"

# Keys whose values change from run to run, and what stands in for them.
STAND_INS = {
    "duration": 0.01,
    "started": "2026-01-01T12:00:00+00:00",
    "finished": "2026-01-01T12:00:01+00:00",
    "since": "2026-01-01T12:00:00+00:00",
    "heartbeat": "2026-01-01T12:00:00+00:00",
    "transaction": "0x03f0a1b2c3d4e5f6",
    # The lock's holder: the Zope process of the test run.
    "host": "zope-1.example.org",
    "pid": 4242,
}

TRACEBACK = re.compile(r"Traceback \(most recent call last\):\n(?:[ \t].*\n?)+")
HOST = re.compile(r"(https?://)(localhost|127\.0\.0\.1):\d+")


def _normalise_text(text):
    text = HOST.sub(rf"\1localhost:{PORT}", text)
    return TRACEBACK.sub("Traceback (most recent call last):\n  ...\n", text)


# GenericSetup runs a profile's import steps in an order it does not fix
# (it varies from process to process), so their log lines are put in order.
IMPORT_LINE = re.compile(r"^[A-Z]+ GenericSetup\.")


def _order_import_lines(lines):
    ordered, run = [], []
    for line in [*lines, None]:
        if line is not None and IMPORT_LINE.match(line):
            run.append(line)
            continue
        ordered.extend(sorted(run))
        run = []
        if line is not None:
            ordered.append(line)
    return ordered


def normalise(value, key=None):
    """Return ``value`` with volatile parts replaced, recursively."""
    if key in STAND_INS and value is not None:
        return STAND_INS[key]
    if key == "log" and isinstance(value, list):
        return [_normalise_text(line) for line in _order_import_lines(value)]
    if key == "report" and isinstance(value, str):
        lines = _order_import_lines(_normalise_text(value).split("\n"))
        return "\n".join(lines)
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        return _normalise_text(value)
    return value


def _dump(data):
    return json.dumps(normalise(data), indent=4, sort_keys=True, ensure_ascii=False)


def render_request(request):
    """The request as HTTP/1.1 text, with the headers a reader needs."""
    url = urlsplit(request.url)
    target = url.path + (f"?{url.query}" if url.query else "")
    lines = [f"{request.method} {target} HTTP/1.1"]
    for header in ("Accept", "Authorization", "Content-Type"):
        if header in request.headers:
            lines.append(f"{header}: {request.headers[header]}")
    text = "\n".join(lines) + "\n"
    body = request.body
    if body:
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        with contextlib.suppress(ValueError):
            body = _dump(json.loads(body))
        text += "\n" + body + "\n"
    return text


def render_response(response):
    """The response as HTTP/1.1 text: status line, content type, ``Allow``,
    JSON body."""
    text = f"HTTP/1.1 {response.status_code} {response.reason}\n"
    for header in ("Content-Type", "Allow"):
        if header in response.headers:
            text += f"{header}: {response.headers[header]}\n"
    if response.content:
        try:
            body = _dump(response.json())
        except ValueError:
            body = response.text
        text += "\n" + body + "\n"
    return text


def _compare(path, text):
    if os.environ.get("UPDATE_EXAMPLES") == "1" or (
        not path.exists() and os.environ.get("CI") != "true"
    ):
        path.write_text(text)
        return None
    if not path.exists():
        return f"{path.name} is missing: run the tests locally and commit it"
    if path.read_text() != text:
        return (
            f"{path.name} differs from what the service returns now; run the "
            "tests with UPDATE_EXAMPLES=1 and commit the files"
        )
    return None


def check_example(name, response):
    """Write or compare ``NAME.req``/``NAME.resp`` for a ``requests`` response.

    The examples are the documentation's, recorded on one Plone version line
    (:data:`collective.upgradeapi.testing.versions.DOCS_PLONE`); on the other
    lines, where versions and core steps differ, they are rendered (so the
    rendering is exercised) but neither compared nor written.
    """
    if PLONE_VERSION != DOCS_PLONE:
        render_request(response.request)
        render_response(response)
        return
    DIRECTORY.mkdir(exist_ok=True)
    problems = [
        _compare(DIRECTORY / f"{name}.req", render_request(response.request)),
        _compare(DIRECTORY / f"{name}.resp", render_response(response)),
    ]
    problems = [problem for problem in problems if problem]
    assert not problems, "; ".join(problems)
