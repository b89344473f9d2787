"""Settings of the lock and the history, from the environment or zope.conf.

Each setting is read when it is needed, so a change needs no restart of the
code that reads it (only of the process, for zope.conf). An environment
variable wins over zope.conf; a number that is not a positive integer is
ignored with a warning.

==============================================  =================  =======
environment variable                            zope.conf key      default
==============================================  =================  =======
``COLLECTIVE_UPGRADEAPI_STALE_AFTER`` (s)       ``stale-after``    60
``COLLECTIVE_UPGRADEAPI_HISTORY_SIZE`` (runs)   ``history-size``   100
``COLLECTIVE_UPGRADEAPI_HOST`` (a name)         ``host``           the host name
``COLLECTIVE_UPGRADEAPI_WRITE_HOLD`` (on/off)   ``write-hold``     unset
==============================================  =================  =======

In ``zope.conf``::

    <product-config collective.upgradeapi>
        stale-after 120
        history-size 50
    </product-config>
"""

from App.config import getConfiguration
from plone.registry.interfaces import IRegistry
from zope.component import queryUtility

import logging
import os
import socket


logger = logging.getLogger("collective.upgradeapi")

PRODUCT = "collective.upgradeapi"

#: (environment variable, zope.conf key, default)
STALE_AFTER = ("COLLECTIVE_UPGRADEAPI_STALE_AFTER", "stale-after", 60)
HISTORY_SIZE = ("COLLECTIVE_UPGRADEAPI_HISTORY_SIZE", "history-size", 100)
HOST = ("COLLECTIVE_UPGRADEAPI_HOST", "host", None)


def _product_config():
    product_config = getattr(getConfiguration(), "product_config", None) or {}
    return product_config.get(PRODUCT) or {}


def read(setting, parse=str, expected=""):
    """The value of ``setting`` (``(variable, key, default)``), read by
    ``parse`` from the first place that gives a valid one, the environment
    first; a blank value is not given, one that ``parse`` refuses
    (``ValueError``, ``KeyError``) is ignored with a warning (``expected``:
    what it must be); else the setting's default."""
    variable, key, default = setting
    for source, raw in (
        (variable, os.environ.get(variable)),
        (f"zope.conf {key}", _product_config().get(key)),
    ):
        raw = "" if raw is None else str(raw).strip()
        if not raw:
            continue
        try:
            return parse(raw)
        except (KeyError, ValueError):
            logger.warning("Ignoring %s=%r: %s is expected.", source, raw, expected)
    return default


def _positive_int(raw):
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def stale_after():
    """Seconds without a heartbeat after which an upgrade lock is stale."""
    return read(STALE_AFTER, _positive_int, "a positive integer")


def history_size():
    """How many runs the history keeps (the oldest are dropped)."""
    return read(HISTORY_SIZE, _positive_int, "a positive integer")


def heartbeat_interval():
    """Seconds between two heartbeats of a running upgrade: a quarter of
    :func:`stale_after` (15 s by default), at least half a second and at most
    30 seconds, so a live holder beats four times before it could look stale."""
    return max(0.5, min(30.0, stale_after() / 4))


def host_name():
    """The name of this host, as upgrade locks record their holder.

    The host name by default. Zope processes that share a database must not
    share a name while they run: two containers given the same ``hostname``
    must set ``COLLECTIVE_UPGRADEAPI_HOST`` (or ``host`` in zope.conf) to
    names of their own.
    """
    return read(HOST) or socket.gethostname()


#: (environment variable, zope.conf key, default): the process default of
#: the write hold (see :mod:`collective.upgradeapi.doors.hold`).
WRITE_HOLD = ("COLLECTIVE_UPGRADEAPI_WRITE_HOLD", "write-hold", None)
TRUTHY = ("1", "true", "yes", "on")
FALSY = ("0", "false", "no", "off")
SWITCH = {**dict.fromkeys(TRUTHY, True), **dict.fromkeys(FALSY, False)}


def write_hold():
    """The process default of the write hold: ``True`` (hold writes for the
    whole run), ``False`` (never hold them) or ``None`` (not set).

    ``COLLECTIVE_UPGRADEAPI_WRITE_HOLD`` (environment) or ``write-hold``
    (zope.conf): ``on``, ``true``, ``yes``, ``1`` or ``off``, ``false``,
    ``no``, ``0``; the environment wins, so
    ``COLLECTIVE_UPGRADEAPI_WRITE_HOLD=off`` turns off what zope.conf turned
    on. Any other value is ignored with a warning.
    """
    return read(WRITE_HOLD, lambda raw: SWITCH[raw.lower()], "on or off")


#: The write hold's modes (see :mod:`collective.upgradeapi.doors.hold`):
#: writes held for the whole run, only while a unit is run again after a
#: write conflict (the default), or never.
WHOLE_RUN = "whole_run"
RETRIES = "retries"
NEVER = "never"
#: The registry record of a site's default (a ``Bool``).
HOLD_RECORD = "collective.upgradeapi.hold_writes"


def hold_mode(site, asked=None):
    """The write hold's mode of a run on ``site``.

    :param asked: ``True`` or ``False`` as the run asked (``hold_writes``),
        or ``None``: then the site's registry record :data:`HOLD_RECORD`
        when it has one, else the process default (:func:`write_hold`), else
        :data:`RETRIES`. ``True`` is :data:`WHOLE_RUN`, ``False``
        :data:`NEVER`.
    """
    if asked is None:
        registry = queryUtility(IRegistry, context=site)
        asked = registry.get(HOLD_RECORD) if registry is not None else None
    if asked is None:
        asked = write_hold()
    if asked is None:
        return RETRIES
    return WHOLE_RUN if asked else NEVER
