"""What a Zope process does for upgrade runs when it starts and when it stops.

**Start.** When Zope has opened its database (``IDatabaseOpenedWithRoot``,
which ``runwsgi``, ``zconsole`` and ``Zope2.app()`` fire once ZCML is loaded),
:func:`clear_dead_locks` looks at every Plone site at the root of the
database: a lock whose holder is a process of this host that is gone (killed,
crashed, restarted) is removed, and its run recorded as ``abandoned`` with the
step it was in and its last sign of life. A holder on another host is left
alone: it goes stale after its heartbeat timeout. (plone.testing's layers
start Zope before they load ZCML, so this subscriber does not run there;
tests call :func:`clear_dead_locks`.)

**Stop.** Neither Zope nor waitress handles ``SIGTERM``: the process ends at
once, and ``atexit`` hooks would run (for ``SIGINT``) only after Zope closed
its databases. So the subscriber also installs handlers for ``SIGTERM`` and
``SIGINT`` (:func:`install_signal_handlers`, main thread only), which, when a
run of this process holds a lock:

1. tell the runs to stop at their next step boundary (they abort and record
   themselves as abandoned, ``error.type: "Stopped"``), and give them
   :data:`GRACE` seconds to do so;
2. for a run still inside a step, record it as abandoned and release its lock
   from the handler (through a connection of its own, waiting at most
   :data:`WRITE_TIMEOUT` seconds for the database);
3. then do what the signal did before: the previous handler (``SIGINT``:
   Zope's ``KeyboardInterrupt``, which closes the databases), or the default
   action (``SIGTERM``: the process ends). A run in the main thread (the
   in-process ``plone-upgrade``) gets ``SystemExit`` instead, so that it
   unwinds and records itself.

Without a running upgrade the handlers change nothing.
"""

from collective.upgradeapi.tracking import holder as holders
from collective.upgradeapi.tracking import state as states
from collective.upgradeapi.tracking.store import now
from collective.upgradeapi.tracking.store import SideConnection

import logging
import os
import signal
import threading
import time
import transaction


logger = logging.getLogger("collective.upgradeapi")

#: Seconds a stopping process gives its runs to reach a step boundary.
GRACE = 2.0
#: Seconds a stopping process waits for the database to record a run.
WRITE_TIMEOUT = 5.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)

_previous = {}


def database_opened(event):
    """Subscriber of ``IDatabaseOpenedWithRoot``: clear dead predecessors'
    locks and install the signal handlers. Never raises."""
    try:
        clear_dead_locks(event.database)
    except Exception:
        logger.exception("Could not look for upgrade locks of dead processes.")
    try:
        install_signal_handlers()
    except Exception:
        logger.exception("Could not install the upgrade runs' signal handlers.")


# -- start -------------------------------------------------------------------


def plone_sites(app):
    """The Plone sites at the root of the Zope application ``app``."""
    from plone.base.interfaces import IPloneSiteRoot

    for entry in getattr(app, "_objects", ()):
        # Mount points and other objects are not loaded.
        if entry.get("meta_type") != "Plone Site":
            continue
        site = app._getOb(entry["id"], None)
        if site is not None and IPloneSiteRoot.providedBy(site):
            yield site


def clear_dead_locks(db):
    """Remove the locks of every Plone site at the root of ``db`` whose
    holder is a process of this host that is gone; their runs are recorded as
    abandoned.

    :returns: ``{site id: the lock as it was}`` for each lock removed.
    """
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    cleared = {}
    try:
        app = connection.root().get("Application")
        for site in list(plone_sites(app)) if app is not None else ():
            shown = clear_dead_lock(site)
            if shown is not None:
                cleared[site.getId()] = shown
    finally:
        manager.abort()
        connection.close()
    return cleared


def clear_dead_lock(site):
    """Remove ``site``'s lock if its holder is a process of this host that is
    gone; return the lock as it was, or ``None``."""
    side = SideConnection(site)
    try:
        shown = side.read(lambda state: state.lock() if state else None)
        if shown is None or shown["stale_reason"] != states.PROCESS_GONE:
            return None

        def clear(state):
            current = state.lock()
            if current is None or current["stale_reason"] != states.PROCESS_GONE:
                return None
            state.abandon(states.PROCESS_GONE_ERROR, states.GONE)
            return current

        shown = side.transact(clear)
    finally:
        side.close()
    if shown is not None:
        holder = shown["holder"] or {}
        logger.warning(
            "Removed the upgrade lock of site %s: its holder, process %s on this "
            "host (%s), is gone. Its run %s is recorded as abandoned.",
            site.getId(),
            holder.get("pid"),
            holder.get("host"),
            shown["run_id"],
        )
    return shown


# -- stop --------------------------------------------------------------------


def install_signal_handlers():
    """Handle ``SIGTERM`` and ``SIGINT`` (see the module's docstring).

    Only in the main thread (Python's rule), and once per process.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        if current is _on_signal:
            continue
        _previous[signum] = current
        signal.signal(signum, _on_signal)


def _on_signal(signum, frame):
    name = signal.Signals(signum).name
    here = threading.current_thread()
    unwinds = False
    try:
        unwinds = any(run.thread is here for run in holders.active_runs())
        stop_runs(name)
    except Exception:
        logger.exception("Could not record the upgrade runs stopped by %s.", name)
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    if unwinds:
        raise SystemExit(128 + signum)
    # As before: the default action (SIGTERM ends the process).
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def stop_runs(reason, grace=GRACE):
    """Stop the runs of this process: they stop at their next step boundary;
    after ``grace`` seconds, those of other threads still inside a step are
    recorded as abandoned and their locks released from here.

    :param reason: why (the signal's name), for the history.
    :returns: the runs recorded from here.
    """
    runs = holders.active_runs()
    if not runs:
        return []
    for run in runs:
        run.stop_reason = reason
    logger.warning(
        "This Zope process is stopping (%s) while an upgrade runs; the run "
        "stops and is recorded as abandoned.",
        reason,
    )
    here = threading.current_thread()
    others = [run for run in runs if run.thread is not here]
    deadline = time.monotonic() + grace
    while others and time.monotonic() < deadline:
        time.sleep(0.05)
        others = [run for run in others if holders.is_active(run.token)]
    for run in others:
        _abandon_in_thread(run, reason)
    return others


def _abandon_in_thread(run, reason):
    """Record ``run`` as abandoned and release its lock, waiting at most
    :data:`WRITE_TIMEOUT` seconds (the database may not answer)."""
    seen = now()

    def work():
        side = SideConnection(run.site)
        try:

            def change(state):
                if not state.holds(run.token):
                    return
                state.abandon(
                    states.STOPPED,
                    f"The Zope process running the run was stopped ({reason}) "
                    "while the run was inside a step; what it had not "
                    "committed was rolled back.",
                    last_seen=seen,
                )

            side.transact(change)
        except Exception:
            logger.exception("Could not record the stopped upgrade run.")
        finally:
            side.close()

    writer = threading.Thread(target=work, name="collective.upgradeapi stop")
    writer.daemon = True
    writer.start()
    writer.join(WRITE_TIMEOUT)
