"""Who holds an upgrade lock, and whether that process still lives.

A lock records its holder (:func:`identity`): the host's name
(:func:`.config.host_name`), the process id, when the process started, and a
boot id drawn when the process started (a restarted container gets the same
process id again, never the same boot id).

A holder on another host can only be judged by its heartbeat. A holder on
this host can be checked (:func:`judge`): its process is gone when no process
has its id any more, when the process with its id started at another time,
or when its id is this process's own while its boot id is not (a predecessor
that had the same process id, as a container's main process always has). A
holder that is this very process is alive while its run is registered here
(:func:`register`).

"""

from collective.upgradeapi import config

import os
import threading
import time
import uuid


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
            boot=uuid.uuid4().hex,
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
    """What this process can tell about a lock's ``holder``.

    :param holder: the lock's ``holder`` record, or ``None`` (a lock written
        before holders were recorded).
    :param token: the lock's token (to tell whether a run of this very
        process still holds it).
    :returns: :data:`DEAD` (on this host, and its process is gone),
        :data:`ALIVE` (on this host, and its process runs) or
        :data:`UNKNOWN` (another host, or no holder recorded: only its
        heartbeat tells).
    """
    if not holder or holder.get("host") != config.host_name():
        return UNKNOWN
    me = identity()
    if holder.get("boot") == me["boot"]:
        return ALIVE if is_active(token) else DEAD
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


def unregister(token):
    with _active_lock:
        _active.pop(token, None)


def is_active(token):
    with _active_lock:
        return token in _active
