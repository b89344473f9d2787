#!/usr/bin/env bash
# Make sure PostgreSQL's server programs are installed, for the RelStorage tests.
#
# - initdb and pg_ctl found (on PATH or in /usr/lib/postgresql/<major>/bin,
#   where Debian puts them): nothing to do.
# - Otherwise, as root with apt-get: install Debian's postgresql package,
#   quietly and without questions. Debian's package also creates and starts a
#   cluster of its own; the tests do not use it (they start a throwaway one).
# - Otherwise: say how to install it and exit 0; the RelStorage tests then
#   skip (outside CI) or fail (with CI=true).
#
# Prints one line saying what it did. Exits non-zero only when an install
# that was tried failed.
set -euo pipefail

found() {
    local dir
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        echo "$(dirname "$(command -v initdb)")"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if dir=$(found); then
    echo "ensure-postgresql: PostgreSQL found in $dir, nothing to install."
    exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log=$(mktemp)
    if ! { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            -o Dpkg::Use-Pty=0 postgresql; } >"$log" 2>&1 </dev/null; then
        cat "$log" >&2
        rm -f "$log"
        echo "ensure-postgresql: installing Debian's postgresql package failed (see above)." >&2
        exit 1
    fi
    rm -f "$log"
    if dir=$(found); then
        echo "ensure-postgresql: installed Debian's postgresql package ($dir)."
        exit 0
    fi
    echo "ensure-postgresql: installed Debian's postgresql package, but initdb and pg_ctl are still missing." >&2
    exit 1
fi

echo "ensure-postgresql: PostgreSQL not found and not installed (needs root and" \
    "apt-get; install the postgresql package yourself): the RelStorage tests" \
    "will skip, or fail with CI=true."
exit 0
