"""The release artifacts: what the sdist and the wheel hold, and honest floors.

The sdist and the wheel are built once per module with
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

import configparser
import pytest
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile


ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "collective" / "upgradeapi"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
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
    entry_points = configparser.ConfigParser()
    entry_points.read_string(dist_info(wheel, "entry_points.txt"))
    assert dict(entry_points["plone.autoinclude.plugin"]) == {
        "target": "plone",
        "module": "collective.upgradeapi",
    }
    assert entry_points["console_scripts"]["plone-upgrade"] == (
        "collective.upgradeapi.cli:main"
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
    for line in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(line)
        version = pinned.get(canonicalize_name(requirement.name))
        assert version, f"{requirement.name} is not pinned in {constraints.name}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{constraints.name} pins {requirement.name}=={version}, "
            f"outside {requirement.specifier}"
        )
