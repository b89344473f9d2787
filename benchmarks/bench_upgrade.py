"""Every performance figure of collective.upgradeapi against its reference.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/bench_upgrade.py          # every figure
    .venv/bin/python benchmarks/bench_upgrade.py --quick  # fewer rounds, 300 docs
    .venv/bin/python benchmarks/bench_upgrade.py --full   # more rounds
    .venv/bin/python benchmarks/bench_upgrade.py --only get,dry,bytes

It sets up the test suite's stock site (Plone with plone.restapi and this
add-on, no HTTP server) on a database whose changes go to a FileStorage in a
temporary directory, logs at INFO to a file as Zope's default event log does,
and calls the ``@upgrade`` services of this add-on and of plone.restapi in
process on the same site. Benchmark-only profiles and upgrade steps are
registered from ``benchsite.py``, never by the package.

Timings alternate the two sides of a comparison (A, B, B, A, A, B...) on the
same site and report medians, the ratio of the medians and the spread of the
per-round ratios (25th-75th percentile). FileStorage calls ``fsync`` at every
commit. Timings are taken without it (what a fast disk, or the in-memory
storage of the earlier benchmark, costs), except for the core dry run, which
is also timed with it, and the real run, timed with it only (Plone's loop
commits too). The bookkeeping of a run is a few small commits, so what it
costs on a slow disk is a few times that disk's ``fsync`` (printed first).

The site's database keeps 5,000 objects in a connection's cache, as a
zope.conf database without a ``cache-size`` of its own (``BENCH_CACHE_SIZE``
sets another); with the test layers' 400, every run reloads much of what the
run before it loaded.

Sections (``--only``): ``get``, ``dry``, ``bytes``, ``status``, ``scale``,
``real``, ``changes`` (the change report: a core dry run with and without it,
the pictures of the configuration, a real run over the documents with and
without it; wall-clock and CPU time of the process, each judged by its
spread: met when the per-round ratios' upper quartile is at the target or
below, undecided when the target lies inside the spread). The last lines are
the summary: each figure, its reference or target, and whether it is met.
"""

from contextlib import contextmanager

import argparse
import benchsite
import gc
import logging
import os
import platform
import statistics
import sys
import time
import tracemalloc
import transaction


SECTIONS = ("get", "dry", "bytes", "status", "scale", "real", "changes")

#: Rounds of each comparison, documents of the real run's site, profiles of
#: 10 trivial steps for the scale table, lines logged by the noisy step.
PRESETS = {
    "quick": {
        "get": 60,
        "dry": 12,
        "changes": 20,
        "real": 3,
        "documents": 300,
        "scale": (10, 100),
        "scale_rounds": 2,
        "noisy_lines": 20_000,
    },
    "default": {
        "get": 150,
        "dry": 30,
        "changes": 60,
        "real": 5,
        "documents": 3000,
        "scale": (10, 100, 1000),
        "scale_rounds": 3,
        "noisy_lines": 100_000,
    },
    "full": {
        "get": 400,
        "dry": 60,
        "changes": 120,
        "real": 11,
        "documents": 3000,
        "scale": (10, 100, 1000),
        "scale_rounds": 5,
        "noisy_lines": 200_000,
    },
}


def out(text=""):
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


# -- measuring -------------------------------------------------------------


@contextmanager
def fsync(enabled):
    """FileStorage's ``fsync`` at each commit on (``True``) or off."""
    module = sys.modules["ZODB.FileStorage.FileStorage"]
    saved = module.fsync
    module.fsync = os.fsync if enabled else None
    try:
        yield
    finally:
        module.fsync = saved


def timed(call, cpu=None):
    """Wall-clock seconds of ``call()``; its CPU seconds appended to ``cpu``."""
    transaction.abort()
    gc.collect()
    started, processor = time.perf_counter(), time.process_time()
    call()
    seconds = time.perf_counter() - started
    if cpu is not None:
        cpu.append(time.process_time() - processor)
    transaction.abort()
    return seconds


def alternate(calls, rounds, before=None, cpu=None):
    """Time ``calls`` (``{name: callable}``) in alternation, ``rounds`` times.

    :param before: ``before(name)`` runs, untimed, before each call.
    :param cpu: a dict that gets ``{name: [CPU seconds]}`` too.
    :returns: ``{name: [seconds]}``.
    """
    names = list(calls)
    timings = {name: [] for name in names}
    if cpu is not None:
        cpu.update({name: [] for name in names})
    for index in range(rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            if before is not None:
                before(name)
            sink = None if cpu is None else cpu[name]
            timings[name].append(timed(calls[name], sink))
    return timings


def quartiles(values):
    values = sorted(values)
    if len(values) < 4:
        return values[0], values[-1]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


class Comparison:
    """Medians of two alternated sides, their ratio and its spread."""

    def __init__(self, ours, reference):
        self.ours = ours
        self.reference = reference
        self.mine = statistics.median(ours)
        self.theirs = statistics.median(reference)
        self.ratio = self.mine / self.theirs
        self.spread = quartiles([a / b for a, b in zip(ours, reference, strict=True)])

    def judge(self, target):
        """Met when the per-round ratios' upper quartile is at most ``target``
        (the spread lies below it), not met when the lower one is above it,
        undecided otherwise (the spread is wider than the margin)."""
        low, high = self.spread
        return True if high <= target else False if low > target else UNDECIDED

    def line(self, label, reference_name):
        low, high = self.spread
        return (
            f"{label:<44} ours {self.mine * 1000:8.1f} ms   {reference_name} "
            f"{self.theirs * 1000:8.1f} ms   ratio {self.ratio:5.2f} "
            f"(rounds {len(self.ours)}, per-round ratio p25-p75 {low:.2f}-{high:.2f})"
        )


UNDECIDED = "undecided (spread)"


class Report:
    """The figures measured, for the summary at the end."""

    def __init__(self):
        self.rows = []

    def add(self, figure, measured, reference, met):
        self.rows.append((figure, measured, reference, met))

    def summary(self):
        out()
        out("Summary: each figure against its target")
        out("-" * 118)
        for figure, measured, reference, met in self.rows:
            verdict = {True: "met", False: "NOT MET", None: "info"}.get(met, met)
            out(f"{figure:<52} {measured:<26} {reference:<30} {verdict}")


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib.metadata import version

    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Plone {version('Products.CMFPlone')}, "
        f"plone.restapi {version('plone.restapi')}"
    )


def load():
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def fsync_latency(directory, count=50):
    """Median seconds of an ``fsync`` after appending 1 KB, as a commit does."""
    path = os.path.join(directory, "fsync-probe")
    timings = []
    with open(path, "ab") as probe:
        for _ in range(count):
            probe.write(os.urandom(1024))
            probe.flush()
            started = time.perf_counter()
            os.fsync(probe.fileno())
            timings.append(time.perf_counter() - started)
    os.unlink(path)
    return statistics.median(timings)


def kb(size):
    return f"{size / 1024:.1f} KB"


# -- sections ----------------------------------------------------------------


def section_get(site, services, options, report):
    from collective.upgradeapi.testing.versions import OLD

    out("\n== GET @upgrade: this add-on against plone.restapi's built-in")
    for label, version in (("up to date", None), (f"core at {OLD}", OLD)):
        site.rewind({benchsite.CORE: version or site.core_fs})
        timings = alternate(
            {
                "ours": services.caller("ours_get"),
                "builtin": services.caller("builtin_get"),
            },
            options.rounds["get"],
        )
        compared = Comparison(timings["ours"], timings["builtin"])
        out(compared.line(f"GET, stock site, {label}", "built-in"))
        report.add(
            f"GET @upgrade ({label}) / built-in",
            f"{compared.ratio:.2f}",
            "at most 0.80",
            compared.ratio <= 0.80,
        )
    site.rewind({benchsite.CORE: site.core_fs})


def section_dry(site, services, options, report):
    from collective.upgradeapi.testing.versions import OLD

    out("\n== Dry-run POST @upgrade: this add-on against plone.restapi's built-in")
    # Without the change report, as the built-in: its cost is section changes.
    calls = {
        "ours": services.caller("ours_post", {"dry_run": True, "changes": False}),
        "builtin": services.caller("builtin_post", {"dry_run": True}),
    }
    site.rewind({benchsite.CORE: OLD})
    steps = len(services.call("ours_post", {"dry_run": True})["steps"])
    transaction.abort()
    for synced in (False, True):
        with fsync(synced):
            timings = alternate(calls, options.rounds["dry"])
        compared = Comparison(timings["ours"], timings["builtin"])
        how = "fsync" if synced else "no fsync"
        out(
            compared.line(
                f"dry run, core from {OLD} ({steps} steps), {how}", "built-in"
            )
        )
        report.add(
            f"dry-run POST, core from {OLD} / built-in, {how}",
            f"{compared.ratio:.2f}",
            f"at most 1.05 ({site.fsync_ms:.1f} ms/fsync)" if synced else "info",
            compared.judge(1.05) if synced else None,
        )
    site.rewind({benchsite.CORE: site.core_fs})
    timings = alternate(calls, options.rounds["dry"])
    compared = Comparison(timings["ours"], timings["builtin"])
    out(compared.line("dry run, nothing to do, no fsync", "built-in"))
    extra = compared.mine - compared.theirs
    report.add(
        "dry-run POST, nothing to do / built-in",
        f"{compared.ratio:.2f} ({extra * 1000:+.1f} ms)",
        "almost nothing: at most +2 ms",
        extra <= 0.002,
    )


def appended(site, call):
    """``(bytes, transactions, answer)`` that ``call()`` appends to Data.fs."""
    transaction.abort()
    size, tid = site.size(), site.last_tid()
    answer = call()
    transaction.abort()
    count, _ = site.transactions_since(tid)
    return site.size() - size, count, answer


def last_entry(site):
    from collective.upgradeapi.tracking.publishing import records

    records = records(site.portal)
    return records.runs[records.runs.maxKey()]


def section_bytes(site, services, options, report):
    from collective.upgradeapi.testing.versions import OLD

    out("\n== Bytes appended to Data.fs (FileStorage) and history entries")
    out(
        "(the size of Data.fs before and after one call; an entry: the stored "
        "pickles of its record and of its own sub-records; after a first run, "
        "which also creates the records of the lock, status and history)"
    )
    services.call("ours_post", {"dry_run": True})
    site.rewind({benchsite.CORE: OLD})
    for name in ("builtin_post", "ours_post"):
        size, count, answer = appended(
            site, lambda name=name: services.call(name, {"dry_run": True})
        )
        out(
            f"core dry run from {OLD}, {name:<13} {size:7d} bytes in {count} "
            f"transactions; report {len(answer['report'])} characters"
        )
        if name == "ours_post":
            entry = site.stored_size(last_entry(site))
            out(f"  its history entry: {entry} bytes")
            report.add(
                f"bytes appended by one core dry run (from {OLD})",
                f"{kb(size)} in {count} txns",
                "at most 5 KB (built-in: 0)",
                size <= 5 * 1024,
            )
            report.add(
                "history entry of that run",
                kb(entry),
                "at most 64 KB",
                entry <= 64 * 1024,
            )
    site.rewind({benchsite.CORE: site.core_fs})
    for name in ("builtin_post", "ours_post"):
        size, count, _ = appended(
            site, lambda name=name: services.call(name, {"dry_run": True})
        )
        out(
            f"dry run with nothing to do, {name:<13} {size:7d} bytes in "
            f"{count} transactions"
        )
    report.add(
        "bytes appended by a dry run with nothing to do",
        f"{kb(size)} in {count} txns",
        "recorded, at most 4 KB",
        size <= 4 * 1024,
    )
    # A full history (filled with dry runs with nothing to do): the oldest
    # run is dropped with each new one.
    from collective.upgradeapi import config
    from collective.upgradeapi.tracking.publishing import records

    while len(records(site.portal).runs) < config.history_size():
        services.call("ours_post", {"dry_run": True})
    site.rewind({benchsite.CORE: OLD})
    size, count, _ = appended(
        site, lambda: services.call("ours_post", {"dry_run": True})
    )
    full = f"a full history ({config.history_size()} runs)"
    out(f"core dry run from {OLD} with {full}: {size} bytes in {count} transactions")
    report.add(
        f"the same with {full}",
        f"{kb(size)} in {count} txns",
        "at most 5 KB",
        size <= 5 * 1024,
    )
    site.rewind({benchsite.CORE: site.core_fs})

    lines = options.rounds["noisy_lines"]
    profiles = benchsite.Profiles(site)
    noisy = profiles.add(
        "noisy", [("Bench: a step that logs a lot", benchsite.noisy(lines))]
    )
    size, count, answer = appended(
        site, lambda: services.call("ours_post", {"dry_run": True, "profiles": [noisy]})
    )
    entry = last_entry(site)
    stored = site.stored_size(entry)
    from collective.upgradeapi import api

    kept = api.runs(site.portal)[0]
    marker = [line for line in kept["steps"][0]["log"] if "dropped" in line]
    out(
        f"dry run of a step logging {lines} lines: answer's report "
        f"{len(answer['report'])} characters; {size} bytes appended in {count} "
        f"transactions; history entry {stored} bytes; stored report "
        f"{len(kept['report'])} characters"
    )
    out(f"  marker: {marker[0] if marker else None}")
    report.add(
        f"history entry of a run logging {len(answer['report']) / 1e6:.1f} MB",
        kb(stored),
        "at most 64 KB, with a marker",
        stored <= 64 * 1024 and bool(marker),
    )
    profiles.remove()


def section_status(site, services, options, report):
    from collective.upgradeapi import api

    out("\n== Status writes during a run (throttled), and the status right after it")
    count, seconds = 40, 0.05
    profiles = benchsite.Profiles(site)
    slow = profiles.add(
        "slowsteps", [("Bench: a step of 50 ms", benchsite.sleeping(seconds))] * count
    )
    for dry_run in (True, False):
        site.rewind({slow: "1000"})
        started = time.perf_counter()
        size, transactions, answer = appended(
            site,
            lambda dry_run=dry_run: services.call(
                "ours_post", {"dry_run": dry_run, "profiles": [slow]}
            ),
        )
        duration = time.perf_counter() - started
        # A real run commits the upgrade itself once. Fixed bookkeeping: the
        # lock taken, the run planned, its end, the lock released (and the
        # committing phase of a real run).
        bookkeeping = transactions - (0 if dry_run else 1)
        fixed = 4 if dry_run else 5
        rate = (bookkeeping - fixed) / duration
        status = api.status(site.portal)
        exact = (
            status["steps_done"] == count
            and status["steps_total"] == count
            and status["progress"] == 100
        )
        kind = "dry run" if dry_run else "real run"
        out(
            f"{kind} of {count} steps of {seconds * 1000:.0f} ms: {duration:.2f} s, "
            f"{bookkeeping} bookkeeping transactions ({size} bytes), {fixed} of "
            f"them fixed; status after: {status['state']}, "
            f"{status['steps_done']}/{status['steps_total']}, {status['progress']}%"
        )
        report.add(
            f"status writes during a {kind} of {count} x 50 ms steps",
            f"{rate:.1f}/s (+{fixed} fixed)",
            "throttled: at most 2/s",
            rate <= 2.0,
        )
        report.add(
            f"status right after that {kind}",
            f"{status['steps_done']}/{status['steps_total']}, {status['progress']}%",
            "exact final numbers",
            exact,
        )
    profiles.remove()


def section_scale(site, services, options, report):
    from collective.upgradeapi import api
    from collective.upgradeapi.engine.runner import Runner
    from collective.upgradeapi.engine.selection import Selection

    out("\n== Scale: N installed profiles of 10 pending trivial steps each")
    out(
        "(GET @upgrade; planning: the selection checked; a dry run of 'all': "
        "bare: GenericSetup's steps called in a loop; engine: the runner alone; "
        "tracked: api.upgrade with lock, status and history; bookkeeping: "
        "tracked - bare, per step; tracking: tracked - engine, per step)"
    )
    out(
        f"{'steps':>7} {'GET ms':>9} {'us/step':>8} {'plan ms':>9} "
        f"{'us/step':>8} {'bare ms':>9} {'engine ms':>10} {'tracked ms':>11} "
        f"{'bookkeeping us/step':>20} {'tracking us/step':>17}"
    )
    portal = site.portal
    rows = []
    selection = Selection(profiles="all")
    for count in options.rounds["scale"]:
        scale = benchsite.Profiles(site)
        ids = scale.add_trivial(count, 10)
        transaction.commit()

        def bare(ids=ids):
            setup = site.setup
            for profile_id in ids:
                for info in setup.listUpgrades(profile_id):
                    info["step"].doStep(setup)
                setup.setLastVersionForProfile(
                    profile_id, setup.getVersionForProfile(profile_id)
                )

        calls = {
            "get": services.caller("ours_get"),
            "plan": lambda: Runner(portal).check(selection),
            "bare": bare,
            "engine": lambda: Runner(portal, dry_run=True).run(selection),
            "tracked": lambda: api.upgrade(
                portal, selection, dry_run=True, user="bench"
            ),
        }
        rounds = options.rounds["scale_rounds"]
        timings = alternate(calls, rounds)
        medians = {name: statistics.median(values) for name, values in timings.items()}
        steps = count * 10
        keeping = (medians["tracked"] - medians["bare"]) / steps
        tracking = (medians["tracked"] - medians["engine"]) / steps
        rows.append((steps, medians, keeping))
        out(
            f"{steps:7d} {medians['get'] * 1000:9.1f} "
            f"{medians['get'] / steps * 1e6:8.1f} "
            f"{medians['plan'] * 1000:9.1f} {medians['plan'] / steps * 1e6:8.1f} "
            f"{medians['bare'] * 1000:9.1f} {medians['engine'] * 1000:10.1f} "
            f"{medians['tracked'] * 1000:11.1f} {keeping * 1e6:20.1f} "
            f"{tracking * 1e6:17.1f}"
        )
        scale.remove()
    # Per-step costs of the two largest sizes: the smaller ones carry the
    # fixed cost of a request.
    first, last = rows[-2] if len(rows) > 1 else rows[0], rows[-1]
    for name, what in (("get", "listing (GET)"), ("plan", "planning")):
        growth = (last[1][name] / last[0]) / (first[1][name] / first[0])
        report.add(
            f"{what}: cost per step, {last[0]} vs {first[0]} steps",
            f"x{growth:.2f}",
            "linear: at most x1.5",
            growth <= 1.5,
        )
    worst = max(row[2] for row in rows)
    report.add(
        f"bookkeeping per step, runs of up to {last[0]} trivial steps",
        f"{worst * 1000:.3f} ms",
        "at most 1 ms",
        worst <= 0.001,
    )


def section_real(site, services, options, report):
    from collective.upgradeapi.testing.versions import OLD

    count = options.rounds["documents"]
    out(f"\n== A real run on a site of {count} Documents")
    started = time.perf_counter()
    made = benchsite.add_documents(site, count)
    out(f"({made} documents created in {time.perf_counter() - started:.0f} s)")
    profiles = benchsite.Profiles(site)
    docs = profiles.add("documents", benchsite.DOCUMENT_STEPS)
    rewound = {benchsite.CORE: OLD, docs: "1000"}
    portal = site.portal

    def ours():
        answer = services.call("ours_post", {"profiles": "all"})
        assert answer["committed"] and answer["upgraded"], answer["steps"]
        return answer

    def plone():
        # Plone's own loop: the core upgrade, then each add-on profile.
        migration = portal.portal_migration
        setup = portal.portal_setup
        migration.upgrade(REQUEST=site.request)
        for profile_id in setup.listProfilesWithUpgrades():
            if setup.getLastVersionForProfile(profile_id) == "unknown":
                continue
            if setup.listUpgrades(profile_id):
                setup.upgradeProfile(profile_id)
        transaction.commit()

    site.rewind(rewound)
    with fsync(True):
        answer = ours()
        steps = len(answer["steps"])
        slowest = sorted(answer["steps"], key=lambda step: -step["duration"])[:6]
        out(
            f"{steps} steps; the slowest: "
            + "; ".join(f"{s['title']} {s['duration']:.2f} s" for s in slowest)
        )
        written = {}
        for name, call in (("ours", ours), ("plone", plone)):
            site.rewind(rewound)
            written[name], _, _ = appended(site, call)
        cpu = {}
        timings = alternate(
            {"ours": ours, "plone": plone},
            options.rounds["real"],
            before=lambda name: site.rewind(rewound),
            cpu=cpu,
        )
    compared = Comparison(timings["ours"], timings["plone"])
    out(compared.line(f"real run, {steps} steps, fsync", "Plone's loop"))
    # CPU seconds of the process (every thread): less shaken by a busy host.
    on_cpu = Comparison(cpu["ours"], cpu["plone"])
    out(on_cpu.line(f"real run, {steps} steps, CPU", "Plone's loop"))
    out(
        f"bytes appended by one real run: ours {written['ours']}, Plone's loop "
        f"{written['plone']}"
    )
    report.add(
        f"real run, {steps} steps, {count} docs / Plone's loop",
        f"{compared.ratio:.2f}",
        "at most 1.03",
        compared.judge(1.03),
    )
    report.add(
        "the same, CPU seconds",
        f"{on_cpu.ratio:.2f} ({on_cpu.spread[0]:.2f}-{on_cpu.spread[1]:.2f})",
        "at most 1.03",
        on_cpu.judge(1.03),
    )
    site.rewind(rewound)
    size, transactions, answer = appended(
        site, lambda: services.call("ours_post", {"profiles": "all", "dry_run": True})
    )
    entry = site.stored_size(last_entry(site))
    out(
        f"dry run of 'all' on this site: {size} bytes appended in {transactions} "
        f"transactions; history entry {entry} bytes; report {len(answer['report'])} "
        "characters"
    )
    report.add(
        f"bytes appended by a dry run of 'all', {count} docs",
        f"{kb(size)} in {transactions} txns",
        "info (was 730 KB)",
        None,
    )
    report.add("its history entry", kb(entry), "at most 64 KB", entry <= 64 * 1024)
    profiles.remove()


#: Core dry runs timed together in one round of section ``changes``.
REPEAT = 5


def repeated(call, times):
    return lambda: [call() for _ in range(times)]


def _report_cost(label, timings, cpu, target, report, figure):
    """Print wall-clock and CPU ratios of report on / off; judge by both."""
    for clock, values in (("wall", timings), ("CPU", cpu)):
        compared = Comparison(values["on"], values["off"])
        out(compared.line(f"{label}, {clock}", "off"))
        report.add(
            f"{figure}, {clock}",
            f"{compared.ratio:.2f} ({compared.spread[0]:.2f}-{compared.spread[1]:.2f})",
            f"at most {target:.2f}",
            compared.judge(target),
        )


def section_changes(site, services, options, report):
    from collective.upgradeapi.engine import pictures
    from collective.upgradeapi.testing.versions import OLD

    out("\n== The change report: on (a dry run's default) against off")
    site.rewind({benchsite.CORE: OLD})
    steps = len(services.call("ours_post", {"dry_run": True})["steps"])
    transaction.abort()
    cpu = {}
    bodies = {"on": {"dry_run": True}, "off": {"dry_run": True, "changes": False}}
    # Several runs a round: the per-round ratios spread less on a busy machine.
    timings = alternate(
        {
            name: repeated(services.caller("ours_post", body), REPEAT)
            for name, body in bodies.items()
        },
        options.rounds["changes"],
        cpu=cpu,
    )
    label = f"core dry run from {OLD} ({steps} steps, {REPEAT} runs a round)"
    figure = f"core dry run from {OLD}, report on / off"
    _report_cost(label, timings, cpu, 1.30, report, figure)
    site.rewind({benchsite.CORE: site.core_fs})
    first = pictures.take(site.portal)
    for label, old, clean in (
        ("first picture", None, False),
        ("after a step that wrote none of it", first, True),
        ("after a savepoint, nothing changed", first, False),
    ):
        parts = {name: [] for name in pictures.READERS}
        for _ in range(50):
            for name, reader in pictures.READERS.items():
                started = time.perf_counter()
                reader(site.portal, None if old is None else old[name], clean)
                parts[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(v) for name, v in parts.items()}
        out(
            f"picture, {label}: {sum(medians.values()) * 1000:.3f} ms ("
            + ", ".join(f"{name} {value * 1000:.3f}" for name, value in medians.items())
            + ")"
        )
    count = options.rounds["documents"]
    made = benchsite.add_documents(site, count)
    profiles = benchsite.Profiles(site)
    docs = profiles.add("documents", benchsite.DOCUMENT_STEPS)
    rewound = {docs: "1000"}
    calls = {
        "on": services.caller("ours_post", {"profiles": [docs], "changes": True}),
        "off": services.caller("ours_post", {"profiles": [docs]}),
    }
    with fsync(True):
        timings = alternate(
            calls,
            options.rounds["real"],
            before=lambda name: site.rewind(rewound),
            cpu=cpu,
        )
    label = f"real run reindexing {made} documents, fsync"
    figure = f"real run reindexing {made} docs, report on / off"
    _report_cost(label, timings, cpu, 1.20, report, figure)
    peaks = {}
    for name, call in calls.items():
        site.rewind(rewound)
        tracemalloc.start()
        call()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        transaction.abort()
    out(
        "peak memory (tracemalloc) of that run: "
        + ", ".join(f"{name} {peak / 1e6:.1f} MB" for name, peak in peaks.items())
    )
    report.add(
        f"peak memory of that run, report on - off ({made} docs)",
        f"{(peaks['on'] - peaks['off']) / 1e6:+.1f} MB",
        "bounded (info)",
        None,
    )
    profiles.remove()


# -- main ----------------------------------------------------------------------


def log_to_file(directory):
    """As Zope's default event log: the root logger at INFO, to a file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(os.path.join(directory, "event.log"))
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(name)s:%(lineno)d] %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument(
        "--quick", action="store_true", help="fewer rounds, 300 documents"
    )
    preset.add_argument("--full", action="store_true", help="more rounds")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help="sections, comma-separated"
    )
    parser.add_argument(
        "--documents", type=int, help="documents of the real run's site"
    )
    options = parser.parse_args(argv)
    name = "quick" if options.quick else "full" if options.full else "default"
    options.rounds = dict(PRESETS[name])
    if options.documents:
        options.rounds["documents"] = options.documents
    only = [section for section in options.only.split(",") if section]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    out(f"collective.upgradeapi benchmark ({name}): {machine()}")
    out(f"start: {load()}")
    site = benchsite.set_up()
    directory = os.path.dirname(site.path)
    log_to_file(directory)
    site.fsync_ms = fsync_latency(directory) * 1000
    out(
        f"fsync on this disk: {site.fsync_ms:.2f} ms (median); timings "
        "without it unless said"
    )
    services = benchsite.Services(site)
    report = Report()
    try:
        with fsync(False):
            for section in SECTIONS:
                if section not in only:
                    continue
                globals()[f"section_{section}"](site, services, options, report)
        out(f"end: {load()}")
        report.summary()
    finally:
        site.close()


if __name__ == "__main__":
    main(sys.argv[1:])
