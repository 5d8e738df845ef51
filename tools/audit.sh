#!/usr/bin/env bash
# Dependency audit with cargo-deny (policy in deny.toml):
#   advisories  known vulnerabilities, unsound and unmaintained crates (RustSec);
#   bans        crates we refuse (e.g. `users`), wildcard versions;
#   licenses    only the licenses deny.toml allows;
#   sources     crates.io only.
#
# The RustSec advisory database is a git repository on GitHub, which cargo-deny
# clones into $CARGO_HOME/advisory-dbs. Where GitHub cannot be reached (as on
# this project's machines, which reach only the package registries), the
# advisories are checked against a snapshot instead, the newest of:
#   1. the copy cargo-deny cloned on an earlier run, if there is one;
#   2. PAMKRB_ADVISORY_DB: a clone of github.com/RustSec/advisory-db, or a git
#      bundle of one;
#   3. tools/rustsec-advisory-db.bundle, committed with the project (upstream
#      commit bf5c0d2, 2026-08-21): replace it with a newer bundle
#      (`git bundle create x.bundle main` in a clone) to move it forward.
# Its date and age are printed. An advisory fails the audit; so does having
# no database at all. The `users` ban in deny.toml does not depend on it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
export PATH=$CARGO_HOME/bin:$PATH
# cargo-deny names its clone after the database URL's last segment and a hash
# of the URL; this is the name for the default RustSec URL (cargo-deny 0.20).
DEFAULT_DB_DIR=$CARGO_HOME/advisory-dbs/advisory-db-3157b0e258782691

log() { printf 'audit: %s\n' "$*"; }

if ! cargo deny --version >/dev/null 2>&1; then
    log "installing cargo-deny from crates.io (once; kept in ~/.cargo/bin)"
    # Pinned to a minor version: deny.toml's keys change between releases.
    cargo install cargo-deny --version '~0.20' --locked
fi

cd "$ROOT"
# cargo-deny reads `cargo metadata`; with the sources already downloaded it can
# run with --offline, which also stops it from trying GitHub again.
cargo fetch --locked --quiet

# Seconds since the epoch of a database's newest commit on main (a clone or a
# bundle); 0 when there is none.
commit_time() {
    local source=$1
    if [[ -d $source/.git ]]; then
        git -C "$source" log -1 --format=%ct 2>/dev/null || echo 0
    elif [[ -f $source ]]; then
        local tmp
        tmp=$(mktemp -d)
        if git clone --quiet --bare --branch main "$source" "$tmp/db" 2>/dev/null; then
            git -C "$tmp/db" log -1 --format=%ct main 2>/dev/null || echo 0
        else
            echo 0
        fi
        rm -rf "$tmp"
    else
        echo 0
    fi
}

# "2025-02-24, 640 days old": the age matters more than the date.
db_date() {
    local when
    when=$(git -C "$1" log -1 --format=%ct 2>/dev/null) || { echo "of unknown date"; return; }
    echo "of $(date -u -d "@$when" +%F), $((($(date +%s) - when) / 86400)) days old"
}

advisories=skipped
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if timeout 300 cargo deny --color never check advisories >"$out" 2>&1; then
    advisories="ok (RustSec database fetched now: $(db_date "$DEFAULT_DB_DIR"))"
elif ! grep -q 'failed to fetch advisory database' "$out"; then
    cat "$out" >&2
    log "FAILED: advisories (see above)"
    exit 1
else
    db_dir=$(sed -n 's/.*"\([^"]*advisory-dbs\/[^"]*\)".*/\1/p' "$out" | head -1)
    db_dir=${db_dir:-$DEFAULT_DB_DIR}
    log "cannot fetch the RustSec advisory database: $(grep -m1 -oE '(fatal|error): .*' "$out" || echo 'no network')"
    for snapshot in "${PAMKRB_ADVISORY_DB:-}" "$ROOT/tools/rustsec-advisory-db.bundle"; do
        [[ -n $snapshot && -e $snapshot ]] || continue
        if [[ $(commit_time "$snapshot") -gt $(commit_time "$db_dir") ]]; then
            log "seeding cargo-deny's cache from $snapshot"
            rm -rf "$db_dir"
            mkdir -p "$(dirname "$db_dir")"
            git clone --quiet --branch main "$(realpath "$snapshot")" "$db_dir"
            # Later runs must try GitHub again, not quietly "update" from the copy.
            git -C "$db_dir" remote set-url origin https://github.com/RustSec/advisory-db
        fi
    done
    if [[ -d $db_dir/.git ]]; then
        when=$(db_date "$db_dir")
        log "checking advisories against a local copy of the database $when"
        if ! cargo deny --offline --color never check advisories; then
            log "FAILED: advisories (local database $when)"
            exit 1
        fi
        advisories="ok against a local copy of the RustSec database $when (could not update it)"
    fi
fi

log "checking bans, licenses and sources"
cargo deny --offline --color never check bans licenses sources

if [[ $advisories == skipped ]]; then
    log "FAILED: no RustSec advisory database: GitHub is unreachable and there is no local copy"
    log "(tools/rustsec-advisory-db.bundle is missing; PAMKRB_ADVISORY_DB can name a clone or bundle)"
    exit 1
fi
log "advisories $advisories; bans, licenses and sources ok"
