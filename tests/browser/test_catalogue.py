"""The message catalogue: the .pot is what i18ndude finds in the sources
today, and the German catalogue translates every message."""

from pathlib import Path

import collective.upgradeapi
import re
import shutil
import subprocess
import sys


PACKAGE = Path(collective.upgradeapi.__file__).parent
LOCALES = PACKAGE / "locales"
MSGID = re.compile(r'^msgid "(.+)"$', re.MULTILINE)
PAIR = re.compile(r'^msgid "(.+)"\nmsgstr "(.*)"$', re.MULTILINE)


def msgids(text):
    return set(MSGID.findall(text))


def test_pot_is_current(tmp_path):
    """Rebuild it: ``i18ndude rebuild-pot --pot locales/collective.upgradeapi.pot
    --no-line-numbers browser doors profiles`` (in src/collective/upgradeapi),
    then ``i18ndude sync`` the .po files."""
    pot = tmp_path / "new.pot"
    shutil.copy(LOCALES / "collective.upgradeapi.pot", pot)
    i18ndude = Path(sys.executable).parent / "i18ndude"
    subprocess.run(
        [str(i18ndude), "rebuild-pot", "--pot", str(pot), "--no-line-numbers"]
        + ["browser", "doors", "profiles"],
        cwd=PACKAGE,
        check=True,
        capture_output=True,
    )
    committed = (LOCALES / "collective.upgradeapi.pot").read_text("utf-8")
    assert msgids(pot.read_text("utf-8")) == msgids(committed)


def test_german_translates_everything():
    pot = msgids((LOCALES / "collective.upgradeapi.pot").read_text("utf-8"))
    po = (LOCALES / "de/LC_MESSAGES/collective.upgradeapi.po").read_text("utf-8")
    translated = {msgid for msgid, msgstr in PAIR.findall(po) if msgstr}
    assert pot <= translated, sorted(pot - translated)
