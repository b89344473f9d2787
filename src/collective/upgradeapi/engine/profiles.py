"""A profile's plan: its versions and the steps pending for it.

:class:`ProfilePlan` and :class:`PendingStep` are what :class:`.plan.Planner`
reads from GenericSetup; nothing here reads the site.
"""

from dataclasses import dataclass
from dataclasses import field
from Products.GenericSetup.upgrade import normalize_version
from Products.GenericSetup.upgrade import UpgradeEntity


UNKNOWN = "unknown"


def version_str(version):
    """Return a GenericSetup version (tuple, string, ``None``) as a string.

    :param version: a version as GenericSetup stores it.
    :returns: ``"6100"`` for ``("6100",)``, ``None`` for "any version".
    """
    if version is None:
        return None
    if isinstance(version, tuple):
        return ".".join(version)
    return str(version)


@dataclass(frozen=True)
class PendingStep:
    """One upgrade step that has not run yet for its profile; or a task of
    Plone's core upgrade that is no upgrade step (a catalog rebuild), with
    no ``entity`` but a ``call``."""

    id: str
    profile: str
    title: str
    source: str | None
    dest: str | None
    description: str = ""
    proposed: bool = False
    done: bool = False
    entity: UpgradeEntity | None = field(default=None, compare=False, repr=False)
    call: object = field(default=None, compare=False, repr=False)

    def run(self, setup):
        """Run the step with ``setup`` (``portal_setup``), or its ``call``."""
        return self.call() if self.entity is None else self.entity.doStep(setup)

    def ref(self):
        """A short reference for status and history."""
        return {"id": self.id, "profile": self.profile, "title": self.title}

    @property
    def group(self):
        """The built-in ``upgrade_steps`` key: ``"<source>-<dest>"``."""
        return f"{self.source or 'all'}-{self.dest or 'all'}"

    def as_dict(self):
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description or "",
            "source": self.source,
            "dest": self.dest,
            "proposed": self.proposed,
            "done": self.done,
        }


@dataclass
class ProfilePlan:
    """An installed profile and its pending steps.

    Three versions describe a profile: ``instance`` (recorded in the
    database), ``fs`` (its ``metadata.xml``) and ``top`` (the highest
    destination of its registered steps that a run of the profile can reach;
    GenericSetup's ``upgradeProfile`` runs every listed step, past
    ``metadata.xml`` too, while Plone's core profile stops at ``fs``).
    """

    id: str
    title: str
    core: bool
    fs: str | None
    instance: str
    steps: list = field(default_factory=list)
    top: str | None = None

    @property
    def code_version(self):
        """The newest version the code knows: ``metadata.xml`` or ``top``."""
        return highest([v for v in (self.fs, self.top) if v is not None])

    @property
    def metadata_lags(self):
        """The profile's steps lead past the version its ``metadata.xml`` declares.

        plone.volto 6.0.1 declares 1100 and ships steps to 1101: GenericSetup
        runs them, and records 1101.
        """
        return (
            self.fs is not None
            and self.top is not None
            and normalize_version(self.top) > normalize_version(self.fs)
        )

    @property
    def downgraded(self):
        """The database records a newer version than the code knows."""
        code = self.code_version
        if code is None or self.instance == UNKNOWN:
            return False
        return normalize_version(self.instance) > normalize_version(code)

    @property
    def pending(self):
        return [step for step in self.steps if not step.done]

    def selected(self, only=None):
        """The pending steps a run takes: all, or those whose id is in ``only``."""
        return [step for step in self.pending if only is None or step.id in only]

    def as_dict(self):
        return {
            "id": self.id,
            "title": self.title,
            "core": self.core,
            "downgraded": self.downgraded,
            "metadata_lags": self.metadata_lags,
            "versions": {"fs": self.fs, "instance": self.instance},
            "steps": [step.as_dict() for step in self.steps],
        }


def flat(upgrades):
    """GenericSetup's ``listUpgrades`` answer (steps and groups) as step infos."""
    for item in upgrades:
        yield from item if isinstance(item, list) else [item]


def highest(versions):
    return max(versions, key=normalize_version, default=None)
