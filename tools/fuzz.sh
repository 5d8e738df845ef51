#!/usr/bin/env bash
# Bounded fuzzing of the parsers that see untrusted input (fuzz/fuzz_targets/).
#
#   tools/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all in fuzz/fuzz_targets/) for SECONDS (default
# 60) of libFuzzer time, after replaying the saved crash inputs in
# tests/data/fuzz-regressions/<target>/. Prints one summary line per target and
# exits non-zero if any target crashed, leaked or hung, naming the input that
# did it (libFuzzer writes it under fuzz/artifacts/<target>/).
#
# cargo fuzz needs nightly-only flags (-Zsanitizer=address); the machine has
# only a stable toolchain, so RUSTC_BOOTSTRAP=1 unlocks them for this build
# alone. The fuzz crate has its own workspace and target directory, so this
# never touches the main crate's build. Building it needs what the main crate
# needs (libpam and libclang headers, from tools/setup.sh).
set -euo pipefail

SECONDS_EACH=${1:-60}
shift || true
if ! [[ $SECONDS_EACH =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: tools/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ_DIR=$ROOT/fuzz
LOG_DIR=${FUZZ_LOG_DIR:-$ROOT/test-artifacts/fuzz}
REGRESSIONS=$ROOT/tests/data/fuzz-regressions
export PATH=$HOME/.cargo/bin:$PATH
export RUSTC_BOOTSTRAP=1

log() { printf 'fuzz: %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz from crates.io (once; kept in ~/.cargo/bin)"
    cargo install cargo-fuzz --locked
fi

cd "$FUZZ_DIR"
if (($# == 0)); then
    mapfile -t targets < <(cargo fuzz list)
else
    targets=("$@")
fi
mkdir -p "$LOG_DIR"

# Release build with debug assertions: overflow and debug_assert! failures are
# bugs the fuzzer should report, not wrap past.
BUILD_FLAGS=(--release --debug-assertions)
log "building ${targets[*]}"
for target in "${targets[@]}"; do
    cargo fuzz build "${BUILD_FLAGS[@]}" "$target"
done

failed=()
summary=()
for target in "${targets[@]}"; do
    # Known crash inputs first: a fixed bug must stay fixed. Given files rather
    # than a directory, libFuzzer runs each once and stops.
    saved=()
    if [[ -d $REGRESSIONS/$target ]]; then
        mapfile -t saved < <(find "$REGRESSIONS/$target" -type f ! -name '*.md' | sort)
    fi
    if ((${#saved[@]})); then
        log "$target: replaying ${#saved[@]} saved crash input(s) from ${REGRESSIONS#"$ROOT"/}/$target"
        if ! cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "${saved[@]}" \
            >"$LOG_DIR/$target.regressions.log" 2>&1; then
            grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|Running: ' \
                "$LOG_DIR/$target.regressions.log" | tail -6 >&2 || true
            summary+=("fuzz: $target: FAILED a saved regression input (log: $LOG_DIR/$target.regressions.log)")
            failed+=("$target")
            continue
        fi
    fi

    args=(-max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10)
    [[ -f $target.dict ]] && args+=(-dict="$target.dict")
    mkdir -p "corpus/$target"
    log "$target: fuzzing for ${SECONDS_EACH}s (log: $LOG_DIR/$target.log)"
    status=0
    cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "corpus/$target" -- "${args[@]}" \
        >"$LOG_DIR/$target.log" 2>&1 || status=$?

    final_stat() { sed -n "s/^stat::$1: *//p" "$LOG_DIR/$target.log" | tail -1; }
    execs=$(final_stat number_of_executed_units)
    rate=$(final_stat average_exec_per_sec)
    # The last status line carries the coverage: "cov: N ft: N corp: N/size".
    last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse|INITED)' "$LOG_DIR/$target.log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    coverage="coverage ${cov:-?} edges, ${ft:-?} features, corpus ${corp:-?}"
    if ((status == 0)); then
        summary+=("fuzz: $target: ok: ${execs:-?} executions in ${SECONDS_EACH}s (${rate:-?}/s), $coverage")
    else
        failed+=("$target")
        summary+=("fuzz: $target: CRASHED (exit $status) after ${execs:-?} executions, $coverage")
        grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: ' \
            "$LOG_DIR/$target.log" | head -6 >&2 || true
        # libFuzzer's own line: "Test unit written to ./artifacts/<target>/crash-<sha1>".
        while read -r artifact; do
            [[ $artifact == /* ]] || artifact=$FUZZ_DIR/${artifact#./}
            summary+=("fuzz: $target: crash input: $artifact")
        done < <(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$LOG_DIR/$target.log")
    fi
done

printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    log "FAILED: ${failed[*]}; reproduce with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${BUILD_FLAGS[*]} <target> <crash input>"
    exit 1
fi
