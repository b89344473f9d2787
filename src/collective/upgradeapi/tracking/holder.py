"""Who holds an upgrade lock, and whether that process still lives.

A lock records its holder (:func:`identity`): the host's name, the process
id, when the process started, and a boot id drawn when it started (a
restarted container gets the same process id again, never the same boot id).
A holder on another host is judged by its heartbeat only; one on this host is
checked (:func:`judge`); one that is this very process lives while its run is
registered here (:func:`register`); its heartbeat is written by the run's
own thread (:class:`Ticker`), and its signals are the run's to answer while
it runs in the main thread (:func:`handle_signals`).
"""

from collective.upgradeapi import config
from collective.upgradeapi.tracking.store import iso

import logging
import math
import os
import signal
import threading
import time
import uuid


logger = logging.getLogger("collective.upgradeapi")


#: What :func:`judge` answers.
ALIVE = "alive"
DEAD = "dead"
UNKNOWN = "unknown"

#: ``stale_reason`` of a stale lock.
PROCESS_GONE = "process_gone"
NO_HEARTBEAT = "no_heartbeat"

#: Two start times of one process, read at different moments, differ by less.
START_TOLERANCE = 1.0

_self = {}
_active = {}
_active_lock = threading.Lock()


def _boot_time():
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _proc_stat(pid):
    """``(state, start time in seconds since the epoch)`` of ``pid`` from
    ``/proc``, or ``None`` (no such process, or no ``/proc``: not Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            data = stat.read()
    except OSError:
        return None
    try:
        # Fields after "(command)": state is field 3, starttime field 22.
        fields = data[data.rindex(")") + 2 :].split()
        ticks = int(fields[19])
        boot = _boot_time()
        started = boot + ticks / os.sysconf("SC_CLK_TCK") if boot else None
        return fields[0], started
    except (ValueError, IndexError, OSError):
        return None


def process_started(pid):
    """When the process ``pid`` started (seconds since the epoch), or ``None``."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def running(pid):
    """Whether a live process (not a zombie) has the id ``pid`` on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    except OSError:
        return True  # cannot tell: assume it runs
    stat = _proc_stat(pid)
    return not (stat and stat[0] in ("Z", "X"))


def identity():
    """This process as a lock records it: ``{"host", "pid", "started", "boot"}``."""
    pid = os.getpid()
    if _self.get("pid") != pid:  # first call, or a child forked since
        _self.update(
            pid=pid,
            boot=uuid.uuid4().hex[:16],  # 64 random bits
            started=round(process_started(pid) or time.time(), 2),
        )
    return {
        "host": config.host_name(),
        "pid": pid,
        "started": _self["started"],
        "boot": _self["boot"],
    }


identity()  # the boot id and start time are drawn when the process starts


def judge(holder, token=None):
    """What this process can tell about a lock's ``holder`` record (or
    ``None``) and ``token``: :data:`DEAD` (on this host, its process gone),
    :data:`ALIVE` (on this host, its process runs; this process: its run
    ``token`` is registered) or :data:`UNKNOWN` (another host, or no holder
    recorded: only its heartbeat tells)."""
    if not holder or holder.get("host") != config.host_name():
        return UNKNOWN
    me = identity()
    if holder.get("boot") == me["boot"]:
        with _active_lock:
            return ALIVE if token in _active else DEAD
    pid = holder.get("pid")
    if pid == me["pid"]:
        return DEAD  # this process's id, another process's run: a predecessor
    if not isinstance(pid, int) or pid <= 0:
        return UNKNOWN
    if not running(pid):
        return DEAD
    started, recorded = process_started(pid), holder.get("started")
    if (
        started is not None
        and recorded is not None
        and abs(started - recorded) > START_TOLERANCE
    ):
        return DEAD  # the id was given to another process since
    return ALIVE


def shown(lock, last_seen, run_id):
    """A stored ``lock`` as a plain dict: whose run (``run_id``) holds it,
    since when, whether it lives (its holder last seen at ``last_seen``)."""
    stale, reason = verdict(lock, last_seen)
    holder, request = lock.get("holder"), lock.get("cancel")
    if holder:
        holder = {k: holder.get(k) for k in ("host", "pid")}
        holder["started"] = iso(lock["holder"].get("started"))
    return {
        "user": lock["user"],
        "since": iso(lock["since"]),
        "heartbeat": iso(last_seen),
        "dry_run": lock["dry_run"],
        "run_id": run_id,
        "holder": holder or None,
        "state": "stale" if stale else ALIVE,
        "stale": stale,
        "stale_reason": reason,
        "stale_after": config.stale_after(),
        "cancel_requested": request
        and {"user": request["user"], "since": iso(request["at"])},
        "committing": bool(lock.get("committing")),
        "writes_held": lock.get("writes_held"),
    }


def verdict(lock, last_seen):
    """``(stale, reason)`` of a ``lock`` whose holder was last seen alive at
    ``last_seen`` (epoch seconds).

    A holder of this host whose process is gone is stale at once; a run of
    this very process is alive while it runs; any other holder is stale after
    :func:`.config.stale_after` seconds without a sign of life (its taking, a
    heartbeat, a progress write).
    """
    judged = judge(lock.get("holder"), lock["token"])
    if judged == DEAD:
        return True, PROCESS_GONE
    own = (lock.get("holder") or {}).get("boot") == identity()["boot"]
    if own and judged == ALIVE:
        return False, None
    if time.time() - last_seen > config.stale_after():
        return True, NO_HEARTBEAT
    return False, None


# -- the runs of this process ------------------------------------------------


def register(token, run):
    """Note that ``run`` (of this process) holds, or is taking, the lock."""
    with _active_lock:
        _active[token] = run


def handle_signals(run):
    """Let ``run``, in the main thread, answer ``SIGTERM`` and ``SIGINT``;
    return the handlers replaced, to be put back when it ends.

    Inside a step the run unwinds at once (``SystemExit``), inside a commit
    (``run.committing``) it stops once the commit is done; either way it is
    recorded as abandoned (``Stopped``) and the process exits with ``128 +
    signal``. Python lets only the main thread set handlers: a Zope process
    serving requests keeps its own answer (it ends at once), and its run is
    recorded as abandoned (``ProcessGone``) by the next process that sees
    its lock.
    """

    def stop(signum, frame):
        run.stopped_by = signum
        logger.warning(
            "This process is stopping (%s) while an upgrade runs; the run "
            "stops and is recorded as abandoned.",
            signal.Signals(signum).name,
        )
        if not run.committing:
            raise SystemExit(128 + signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, stop)
    return previous


def unregister(token):
    with _active_lock:
        _active.pop(token, None)


class Ticker(threading.Thread):
    """The thread of a run of this process: its heartbeat, every
    :func:`.config.heartbeat_interval` seconds, and its progress when due
    (:meth:`publish_at`). ``tick(side, publish)`` writes either through
    ``side``, the thread's own connection (``connect()``), and answers
    whether the run still holds the lock; the thread ends with the run."""

    def __init__(self, connect, tick):
        super().__init__(name="collective.upgradeapi run", daemon=True)
        self.connect, self.tick = connect, tick
        self.interval = config.heartbeat_interval()
        self.wake = threading.Condition()
        self.due = None
        self.stopping = False

    def publish_at(self, moment):
        with self.wake:
            if self.due is None or moment < self.due:
                self.due = moment
                self.wake.notify()

    def stop(self):
        with self.wake:
            self.stopping = True
            self.wake.notify()
        if self.is_alive():
            self.join(timeout=10)

    def _next(self, beat_at):
        """Wait until a write is due: ``True`` for progress, ``False`` for a
        beat, ``None`` when stopping."""
        with self.wake:
            while not self.stopping:
                moment = min(beat_at, self.due if self.due is not None else math.inf)
                if moment <= time.monotonic():
                    publish = self.due is not None and self.due <= time.monotonic()
                    if publish:
                        self.due = None
                    return publish
                self.wake.wait(moment - time.monotonic())
            return None

    def run(self):
        side = self.connect()
        beat_at = time.monotonic() + self.interval
        try:
            while (publish := self._next(beat_at)) is not None:
                try:
                    alive = self.tick(side, publish)
                except Exception:
                    logger.warning("Could not write the upgrade status.", exc_info=True)
                    alive = True
                beat_at = time.monotonic() + self.interval
                if not alive:
                    return
        finally:
            side.close()
