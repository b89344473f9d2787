"""The release artifacts: what the sdists and the wheels hold, honest floors,
and a client that installs alone.

This repository builds two distributions: collective.upgradeapi (the add-on,
with the in-process door of ``plone-upgrade``) and, from ``client/``,
collective.upgradeapi.client (``plone-upgrade`` over HTTP: click and
requests only). The sdists and the wheels are built once per module with
``python -m build --no-isolation`` (the virtualenv's setuptools, nothing
downloaded; about six seconds, hence ``slow``) from a copy of the working tree
without its ``*.egg-info``: setuptools puts every file a stale ``SOURCES.txt``
lists into the sdist, which would hide a file MANIFEST.in no longer includes.
The copy also gets some junk that must stay out. ``build`` makes the wheel
from the sdist, so a file the sdist misses is missing from the wheel too.
"""

from email.parser import HeaderParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pathlib import Path
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

import configparser
import os
import pytest
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile


ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "collective" / "upgradeapi"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CLIENT = ROOT / "client"
CLIENT_PYPROJECT = tomllib.loads((CLIENT / "pyproject.toml").read_text())
CLIENT_NAME = CLIENT_PYPROJECT["project"]["name"]
CONSTRAINTS = sorted(ROOT.glob("constraints*.txt"))


# Left out of the copy: big, or build output that would change the result.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv*", "var", "*.egg-info", "build", "dist", "_build", "__pycache__"
)
# Planted in the copy: none of it belongs in the sdist.
JUNK = [
    ".venv-6.0/bin/python",
    "var/instance/var/filestorage/Data.fs",
    "docs/_build/html/index.html",
    "tests/__pycache__/conftest.cpython-311.pyc",
    ".pytest_cache/README.md",
]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """Build the sdist and the wheel; return the output directory."""
    tree = tmp_path_factory.mktemp("tree") / "collective.upgradeapi"
    shutil.copytree(ROOT, tree, ignore=NOT_COPIED)
    for name in JUNK:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("junk")
    outdir = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", outdir]
    subprocess.run([*command, tree], check=True, capture_output=True)
    return outdir


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory):
    """The client's wheel, built from a copy of ``client/``, open."""
    tree = tmp_path_factory.mktemp("client") / "client"
    shutil.copytree(CLIENT, tree, ignore=NOT_COPIED)
    outdir = tmp_path_factory.mktemp("client-dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", outdir]
    subprocess.run([*command, tree], check=True, capture_output=True)
    (path,) = outdir.glob("*.whl")
    with zipfile.ZipFile(path) as wheel:
        yield wheel


@pytest.fixture(scope="module")
def sdist_files(dist):
    """The sdist's file names, relative to its top directory."""
    (path,) = dist.glob("*.tar.gz")
    with tarfile.open(path) as sdist:
        names = [member.name for member in sdist.getmembers() if member.isfile()]
    return {name.split("/", 1)[1] for name in names}


@pytest.fixture(scope="module")
def wheel(dist):
    """The built wheel, open."""
    (path,) = dist.glob("*.whl")
    with zipfile.ZipFile(path) as wheel:
        yield wheel


def entry_points(wheel):
    """The wheel's ``entry_points.txt``, parsed."""
    parsed = configparser.ConfigParser()
    parsed.read_string(dist_info(wheel, "entry_points.txt"))
    return parsed


def dist_info(wheel, name):
    """The text of ``name`` in the wheel's ``.dist-info`` directory."""
    (path,) = (n for n in wheel.namelist() if n.endswith(f".dist-info/{name}"))
    return wheel.read(path).decode()


def repo_files(pattern):
    """The package's files matching ``pattern``, as paths inside the wheel."""
    return {
        path.relative_to(PACKAGE.parent.parent).as_posix()
        for path in PACKAGE.glob(pattern)
        if path.is_file()
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        ".ci/run",
        "CHANGES.md",
        "LICENSE",
        "MANIFEST.in",
        "Makefile",
        "README.md",
        "docs/conf.py",
        "docs/index.md",
        "mx.ini",
        "pyproject.toml",
        "requirements.txt",
        "setup.py",
        "tox.ini",
    ],
)
def test_sdist_has_project_file(sdist_files, name):
    assert name in sdist_files


@pytest.mark.slow
def test_sdist_has_every_constraints_file(sdist_files):
    assert "constraints.txt" in {path.name for path in CONSTRAINTS}
    for path in CONSTRAINTS:
        assert path.name in sdist_files


@pytest.mark.slow
def test_sdist_has_tests_and_their_http_examples(sdist_files):
    assert "tests/conftest.py" in sdist_files
    examples = {name for name in sdist_files if name.startswith("tests/http-examples/")}
    assert any(name.endswith(".resp") for name in examples)
    assert any(name.endswith(".req") for name in examples)


@pytest.mark.slow
def test_sdist_leaves_out_environments_and_build_output(sdist_files):
    assert not set(JUNK) & sdist_files
    unwanted = (".venv", "var/", "docs/_build/", "dist/", "build/", ".git/", ".")
    unwanted_found = [name for name in sdist_files if name.startswith(unwanted)]
    assert unwanted_found == [".ci/run"]
    assert not [name for name in sdist_files if "__pycache__" in name]
    assert not [name for name in sdist_files if name.endswith((".pyc", ".pyo"))]


@pytest.mark.slow
def test_license_is_the_full_gpl_2_text(wheel):
    text = dist_info(wheel, "licenses/LICENSE")
    assert text == (ROOT / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in text
    assert "Version 2, June 1991" in text
    assert "TERMS AND CONDITIONS FOR COPYING, DISTRIBUTION AND MODIFICATION" in text
    assert "END OF TERMS AND CONDITIONS" in text


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["**/*.zcml", "testing/profiles/**/*"])
def test_wheel_has_package_data(wheel, pattern):
    expected = repo_files(pattern)
    assert expected
    assert expected <= set(wheel.namelist())


@pytest.mark.slow
def test_wheel_has_the_testing_profiles_metadata(wheel):
    found = list(PACKAGE.glob("testing/profiles/**/metadata.xml"))
    assert {"base", "lagging"} <= {path.parent.name for path in found}
    for path in found:
        name = f"collective/upgradeapi/{path.relative_to(PACKAGE).as_posix()}"
        assert name in wheel.namelist()


@pytest.mark.slow
def test_wheel_entry_points(wheel):
    found = entry_points(wheel)
    assert dict(found["plone.autoinclude.plugin"]) == {
        "target": "plone",
        "module": "collective.upgradeapi",
    }
    # The in-process door of plone-upgrade; the script comes with the client.
    assert dict(found["plone_upgrade.doors"]) == {
        "zope_conf": "collective.upgradeapi.cli.inprocess:run"
    }
    assert "console_scripts" not in found


@pytest.mark.slow
def test_client_wheel_has_the_script_and_needs_click_and_requests_only(
    client_wheel,
):
    assert entry_points(client_wheel)["console_scripts"]["plone-upgrade"] == (
        "plone_upgrade:main"
    )
    metadata = HeaderParser().parsestr(dist_info(client_wheel, "METADATA"))
    required = {Requirement(r).name for r in metadata.get_all("Requires-Dist")}
    assert required == {"click", "requests"}
    names = client_wheel.namelist()
    assert "plone_upgrade/http.py" in names
    assert not [n for n in names if n.startswith("collective/")]
    assert dist_info(client_wheel, "licenses/LICENSE") == (ROOT / "LICENSE").read_text()


def test_the_client_is_one_version_with_the_addon():
    assert CLIENT_PYPROJECT["project"]["version"] == PYPROJECT["project"]["version"]
    (needed,) = [
        Requirement(line)
        for line in PYPROJECT["project"]["dependencies"]
        if canonicalize_name(Requirement(line).name) == canonicalize_name(CLIENT_NAME)
    ]
    assert needed.specifier.contains(
        CLIENT_PYPROJECT["project"]["version"], prereleases=True
    )


@pytest.mark.slow
def test_wheel_metadata(wheel):
    metadata = HeaderParser().parsestr(dist_info(wheel, "METADATA"))
    classifiers = metadata.get_all("Classifier")
    assert metadata["License-Expression"] == "GPL-2.0-only"
    assert not [c for c in classifiers if c.startswith("License ::")]
    pythons = {c for c in classifiers if c.startswith("Programming Language :: Python")}
    assert {c.rsplit(" :: ", 1)[1] for c in pythons} == {
        "Python",
        "3",
        "Only",
        "3.11",
    }
    plones = {c for c in classifiers if c.startswith("Framework :: Plone :: 6")}
    assert plones == {f"Framework :: Plone :: {v}" for v in ("6.0", "6.1", "6.2")}
    assert "# Changelog" in metadata.get_payload()


def pins(path):
    """``{canonical name: version}`` of a constraints file's ``==`` lines."""
    result = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            result[canonicalize_name(requirement.name)] = specifier.version
    return result


@pytest.mark.parametrize("constraints", CONSTRAINTS, ids=lambda path: path.name)
def test_every_tested_version_set_meets_the_floors(constraints):
    pinned = pins(constraints)
    lines = PYPROJECT["project"]["dependencies"]
    for line in lines + CLIENT_PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == CLIENT_NAME:
            continue  # built from this repository
        version = pinned.get(canonicalize_name(requirement.name))
        assert version, f"{requirement.name} is not pinned in {constraints.name}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{constraints.name} pins {requirement.name}=={version}, "
            f"outside {requirement.specifier}"
        )


@pytest.mark.slow
def test_the_client_installs_alone_and_checks_a_site(site, tmp_path):
    """One ``pip install`` on a CI runner: click and requests, no Zope, no Plone.

    Into an empty virtualenv, from a copy of ``client/`` (so that nothing is
    built in the working tree); wheels come from the configured index.
    """
    venv = tmp_path / "venv"
    subprocess.run(["python3.11", "-m", "venv", venv], check=True)
    source = tmp_path / "client"
    shutil.copytree(CLIENT, source, ignore=NOT_COPIED)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", source]
    subprocess.run(pip, check=True, capture_output=True, timeout=600)
    installed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {canonicalize_name(line.split("==")[0]) for line in installed.split()}
    assert {"click", "requests", canonicalize_name(CLIENT_NAME)} <= names
    assert not names & {"zope", "products-cmfplone", "collective-upgradeapi"}

    env = {k: v for k, v in os.environ.items() if not k.startswith("PLONE_")}
    env.update(
        PLONE_URL=site.absolute_url(),
        PLONE_USER=SITE_OWNER_NAME,
        PLONE_PASSWORD=SITE_OWNER_PASSWORD,
    )
    result = subprocess.run(
        [venv / "bin" / "plone-upgrade", "check"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{site.absolute_url()} is up to date")
