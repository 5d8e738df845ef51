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
# advisories check uses, in this order:
#   1. the copy cargo-deny cloned on an earlier run, if there is one;
#   2. a local clone of github.com/RustSec/advisory-db named by
#      PAMKRB_ADVISORY_DB (copied into cargo-deny's cache first);
#   3. nothing: it is reported as SKIPPED, loudly, and the other checks still
#      run. PAMKRB_AUDIT_REQUIRE_ADVISORIES=1 turns a skip into a failure.
# The `users` ban in deny.toml does not depend on the database.
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
    if [[ ! -d $db_dir/.git && -n ${PAMKRB_ADVISORY_DB:-} ]]; then
        log "seeding cargo-deny's cache from PAMKRB_ADVISORY_DB=$PAMKRB_ADVISORY_DB"
        mkdir -p "$(dirname "$db_dir")"
        git clone --quiet --depth=1 --branch main "file://$(realpath "$PAMKRB_ADVISORY_DB")" "$db_dir"
        # Later runs must try GitHub again, not quietly "update" from the copy.
        git -C "$db_dir" remote set-url origin https://github.com/RustSec/advisory-db
    fi
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
    cat >&2 <<'EOF'
audit: ================================================================
audit: ADVISORIES SKIPPED: the RustSec advisory database cannot be
audit: fetched from GitHub on this machine and there is no local copy.
audit: Known vulnerabilities were NOT checked; bans (including the
audit: `users` crate), licenses and sources were. To check them, run
audit: this where GitHub is reachable, or point PAMKRB_ADVISORY_DB at a
audit: clone of github.com/RustSec/advisory-db.
audit: ================================================================
EOF
    if [[ ${PAMKRB_AUDIT_REQUIRE_ADVISORIES:-0} == 1 ]]; then
        log "FAILED: PAMKRB_AUDIT_REQUIRE_ADVISORIES=1 and advisories were skipped"
        exit 1
    fi
    log "advisories skipped; bans, licenses and sources ok"
else
    log "advisories $advisories; bans, licenses and sources ok"
fi
