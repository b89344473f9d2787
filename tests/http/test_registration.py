"""How the add-on is loaded: plone.autoinclude, with no install step."""

from importlib.metadata import entry_points
from plone.autoinclude.loader import load_packages

import collective.upgradeapi
import pathlib
import re


def test_autoinclude_plugin_entry_point():
    found = [
        ep
        for ep in entry_points(group="plone.autoinclude.plugin")
        if ep.dist.name == "collective.upgradeapi"
    ]
    assert {(ep.name, ep.value) for ep in found} == {
        ("target", "plone"),
        ("module", "collective.upgradeapi"),
    }


def test_autoinclude_finds_the_package_for_plone():
    packages = load_packages("plone")
    assert "collective.upgradeapi" in packages


def test_override_files_ship_with_the_package():
    root = pathlib.Path(collective.upgradeapi.__file__).parent
    assert (root / "overrides.zcml").is_file()
    assert (root / "services" / "upgrade" / "overrides.zcml").is_file()
    # Nothing needs installing in the site: the one profile only adds the
    # optional link to the Classic UI page in Site Setup (and removes it).
    profiles = root / "profiles"
    assert sorted(
        p.relative_to(profiles).as_posix() for p in profiles.rglob("*.*")
    ) == [
        "default/controlpanel.xml",
        "default/metadata.xml",
        "uninstall/controlpanel.xml",
    ]


def test_overrides_replace_only_what_plone_restapi_registers():
    """GET and POST @upgrade (and POST @addons) replace plone.restapi's;
    DELETE @upgrade overrides nothing and is registered normally."""
    root = pathlib.Path(collective.upgradeapi.__file__).parent
    overrides = (root / "services" / "upgrade" / "overrides.zcml").read_text()
    assert re.findall(r'method="(\w+)"', overrides) == ["GET", "POST"]
    services = (root / "services" / "configure.zcml").read_text()
    assert re.findall(r'method="(\w+)"', services) == ["DELETE"]
