"""Benchmark GET and dry-run POST @upgrade against plone.restapi's built-in.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/bench_upgrade.py [--repeat 5] [--sizes 50x10,200x10]

It sets up the test site (a stock Plone site with plone.restapi and this add-on,
no HTTP server), then measures, calling the services in process on the same site:

1. a stock site, up to date and with the core profile rewound to 6100:
   ``GET @upgrade`` of this add-on against the built-in, as a ratio;
2. the dry-run ``POST @upgrade`` of the core upgrade, both services, as a ratio;
3. ``GET @upgrade`` with N synthetic installed profiles of M pending steps
   each, for every size given: seconds, and microseconds per listed step (flat
   when the cost grows linearly in the number of steps).

Numbers are medians of ``--repeat`` runs.
"""

from pathlib import Path

import argparse
import json
import statistics
import sys
import tempfile
import time
import transaction


CORE = "Products.CMFPlone:plone"


def set_up_layers():
    """A stock Plone site with plone.restapi and this add-on, no test profiles."""
    from collective.upgradeapi.testing import StockLayer
    from plone.app.testing import FunctionalTesting

    bench = FunctionalTesting(bases=(StockLayer(),), name="CollectiveUpgradeAPI:Bench")
    ordered = []

    def visit(layer):
        for base in layer.__bases__:
            visit(base)
        if layer not in ordered:
            ordered.append(layer)

    visit(bench)
    for layer in ordered:
        layer.setUp()
    for layer in ordered:
        if hasattr(layer, "testSetUp"):
            layer.testSetUp()
    return bench


def median_seconds(call, repeat):
    timings = []
    for _ in range(repeat):
        transaction.abort()
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
        transaction.abort()
    return statistics.median(timings)


def services(portal, request):
    from collective.upgradeapi.services.upgrade.get import UpgradeGet
    from collective.upgradeapi.services.upgrade.post import UpgradePost
    from plone.restapi.services.upgrade.get import UpgradeSiteGet
    from plone.restapi.services.upgrade.post import UpgradeSitePost
    from Products.Five.browser import BrowserView

    pristine = dict(request.environ)

    def call(factory, body=None):
        # As plone.rest's ZCML directive builds service classes.
        view_class = type(factory.__name__, (factory, BrowserView), {})

        def run():
            # A fresh environment each time: the service remembers its answer
            # there, for Zope's retries of one request.
            request.environ = dict(pristine)
            if getattr(request, "_orig_env", None) is not None:
                request._orig_env = dict(pristine)
            request.method = request.environ["REQUEST_METHOD"] = (
                "GET" if body is None else "POST"
            )
            if body is not None:
                request.set("BODY", json.dumps(body).encode())
            return view_class(portal, request).reply()

        return run

    return {
        "ours_get": call(UpgradeGet),
        "builtin_get": call(UpgradeSiteGet),
        "ours_dry": call(UpgradePost, {"dry_run": True}),
        "builtin_dry": call(UpgradeSitePost, {"dry_run": True}),
    }


def register_synthetic(portal, count, steps, directory):
    """Register ``count`` installed profiles with ``steps`` pending steps each."""
    from Products.GenericSetup import EXTENSION
    from Products.GenericSetup.registry import _profile_registry
    from Products.GenericSetup.upgrade import _registerUpgradeStep
    from Products.GenericSetup.upgrade import UpgradeStep

    setup = portal.portal_setup
    profile_ids = []
    for index in range(count):
        name = f"bench{index:04d}_{steps}"
        path = Path(directory) / name
        path.mkdir()
        (path / "metadata.xml").write_text(
            f"<metadata><version>{1000 + steps}</version></metadata>"
        )
        _profile_registry.registerProfile(
            name, f"Benchmark {name}", "", str(path), "collective.upgradeapi", EXTENSION
        )
        profile_id = f"collective.upgradeapi:{name}"
        for number in range(steps):
            _registerUpgradeStep(
                UpgradeStep(
                    f"Step {number}",
                    profile_id,
                    str(1000 + number),
                    str(1001 + number),
                    "",
                    lambda tool: None,
                )
            )
        setup.setLastVersionForProfile(profile_id, "1000")
        profile_ids.append(profile_id)
    return profile_ids


def unregister_synthetic(portal, profile_ids):
    from Products.GenericSetup.registry import _profile_registry
    from Products.GenericSetup.upgrade import _upgrade_registry

    for profile_id in profile_ids:
        portal.portal_setup.unsetLastVersionForProfile(profile_id)
        _profile_registry.unregisterProfile(
            profile_id.split(":")[1], "collective.upgradeapi"
        )
        del _upgrade_registry._registry[profile_id]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="25x10,50x10,100x10,200x10,200x20")
    options = parser.parse_args(argv)

    layer = set_up_layers()
    portal = layer["portal"]
    request = layer["request"]
    from plone.app.testing import setRoles
    from plone.app.testing import TEST_USER_ID

    setRoles(portal, TEST_USER_ID, ["Manager"])
    calls = services(portal, request)
    setup = portal.portal_setup
    results = {}

    def measure(label, ours, builtin):
        mine = median_seconds(calls[ours], options.repeat)
        theirs = median_seconds(calls[builtin], options.repeat)
        results[label] = (mine, theirs)
        sys.stdout.write(
            f"{label:<34} ours {mine * 1000:8.1f} ms   built-in "
            f"{theirs * 1000:8.1f} ms   ratio {mine / theirs:5.2f}\n"
        )

    sys.stdout.write(f"median of {options.repeat} runs\n")
    measure("GET, stock site, up to date", "ours_get", "builtin_get")
    setup.setLastVersionForProfile(CORE, "6100")
    transaction.commit()
    measure("GET, stock site, core at 6100", "ours_get", "builtin_get")
    measure("POST dry run, core from 6100", "ours_dry", "builtin_dry")
    setup.setLastVersionForProfile(CORE, setup.getVersionForProfile(CORE))
    transaction.commit()

    for size in options.sizes.split(","):
        count, steps = (int(n) for n in size.split("x"))
        with tempfile.TemporaryDirectory() as directory:
            profile_ids = register_synthetic(portal, count, steps, directory)
            transaction.commit()
            seconds = median_seconds(calls["ours_get"], options.repeat)
            listed = sum(len(p["steps"]) for p in calls["ours_get"]()["profiles"])
            transaction.abort()
            unregister_synthetic(portal, profile_ids)
            transaction.commit()
        sys.stdout.write(
            f"GET, {count:4d} profiles x {steps:3d} steps   {seconds * 1000:8.1f} ms"
            f"   {seconds / listed * 1e6:7.1f} us per listed step ({listed})\n"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
