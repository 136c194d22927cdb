#!/bin/bash
# Builds the libFuzzer executables (Fuzz/, with -sanitize=fuzzer,address) and runs
# them: scripts/fuzz.sh [TARGET|all] [RUNS]. Corpus: Fuzz/Corpus/<target>/ (read;
# new inputs go to a temporary copy, never into the committed corpus); crash
# artefacts: a temporary directory, kept and named when something is found.
# Prints per target: inputs run, crashes, seconds, exec/s. See Documentation/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH=/opt/swift/usr/bin:$PATH
# Crashes are reported by libFuzzer and AddressSanitizer, not by Swift's backtracer.
export SWIFT_BACKTRACE=enable=no
target=${1:-all}
runs=${2:-1000000}
scratch=${FUZZ_SCRATCH:-$root/.build-fuzz}
targets=(ttrpc-frame yamux-session qmp-framing guest-stream-header tar-reader erofs-reader writeback-stream config-toml)
# Known to crash on an input that cannot be fixed here (Documentation/fuzzing.md): only by name.
disabled=()
if [[ $target != all ]]; then
    [[ " ${targets[*]} ${disabled[*]} " == *" $target "* ]] || {
        echo "unknown target $target (one of: ${targets[*]} ${disabled[*]})" >&2; exit 2; }
    targets=("$target")
fi

# FUZZ_NO_BUILD=1: use the executables already built (e.g. for runs in parallel).
[[ -n ${FUZZ_NO_BUILD:-} ]] || (cd Fuzz && nice -n 19 swift build -c release --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address) >&2

status=0
printf '%-20s %10s %8s %8s %10s\n' target inputs crashes seconds exec/s
for t in "${targets[@]}"; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/qemubox-fuzz-$t.XXXXXX")
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "Fuzz/Corpus/$t/"* "$work/corpus/"
    start=$(date +%s.%N)
    set +e
    (cd "$work" && nice -n 19 "$scratch/release/fuzz-$t" -runs="$runs" -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$work/artifacts/" corpus) > "$work/log" 2>&1
    rc=$?
    set -e
    end=$(date +%s.%N)
    inputs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo 0)
    crashes=$(find "$work/artifacts" -type f | wc -l)
    seconds=$(echo "$end - $start" | bc)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo 0)
    printf '%-20s %10s %8s %8.0f %10s\n' "$t" "${inputs:-0}" "$crashes" "$seconds" "${rate:-0}"
    if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
        echo "  $t: exit $rc, artefacts and log kept in $work" >&2
        status=1
    else
        rm -rf "$work"
    fi
done
exit $status
