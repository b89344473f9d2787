#!/usr/bin/env bash
# Make sure Debian's Chromium is installed, for the browser tests (tests/browser).
#
# - /usr/bin/chromium found: nothing to do.
# - Otherwise, as root with apt-get: install Debian's chromium package,
#   quietly and without questions. Nothing is downloaded from a browser
#   vendor: Playwright launches this Chromium (`playwright install` is never
#   run).
# - Otherwise: say how to install it and exit 0; the browser tests then skip
#   (outside CI) or fail (with CI=true).
#
# Prints one line saying what it did. Exits non-zero only when an install
# that was tried failed.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x $CHROMIUM ]]; then
    echo "ensure-chromium: $CHROMIUM found, nothing to install."
    exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log=$(mktemp)
    if ! { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            -o Dpkg::Use-Pty=0 chromium; } >"$log" 2>&1 </dev/null; then
        cat "$log" >&2
        rm -f "$log"
        echo "ensure-chromium: installing Debian's chromium package failed (see above)." >&2
        exit 1
    fi
    rm -f "$log"
    if [[ -x $CHROMIUM ]]; then
        echo "ensure-chromium: installed Debian's chromium package ($CHROMIUM)."
        exit 0
    fi
    echo "ensure-chromium: installed Debian's chromium package, but $CHROMIUM is still missing." >&2
    exit 1
fi

echo "ensure-chromium: $CHROMIUM not found and not installed (needs root and" \
    "apt-get; install the chromium package yourself): the browser tests" \
    "will skip, or fail with CI=true."
exit 0
