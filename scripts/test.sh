#!/usr/bin/env bash
# The test command: installs what the suite needs, builds, then runs every
# test target of the package. Targets run one after another (tests inside a
# target run in parallel): a 2-core machine running the EROFS corpus, TCG
# virtual machines and latency-sensitive protocol tests all at once starves
# Swift's cooperative thread pool and turns timeouts into flakes.
#
# Usage: scripts/test.sh [TARGET...]   (default: every test target)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/swiftpm-tmp.sh
trap swiftpm_tmp_cleanup EXIT

bash scripts/install-deps.sh

export PATH="/opt/swift/usr/bin:$PATH"
swift build --build-tests

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(swift package describe --type json | python3 -c '
import json, sys
for t in json.load(sys.stdin)["targets"]:
    if t["type"] == "test":
        print(t["name"])')
fi

mkdir -p .build-logs
passed=0
failed=0
failed_targets=()
run_target() { # run_target TARGET LOG -> exit status of swift test
    set +e
    swift test --skip-build --filter "^$1\." 2>&1 | tee "$2"
    local rc=${PIPESTATUS[0]}
    set -e
    return "$rc"
}

flaky_targets=()
for target in "${targets[@]}"; do
    echo "=== $target"
    log=".build-logs/test-$target.log"
    rc=0
    run_target "$target" "$log" || rc=$?
    if [ "$rc" -ne 0 ]; then
        # One retry, reported loudly: a target that fails twice fails the run; one
        # that passes on retry is listed as flaky (a bug to fix, see the log).
        cp "$log" "$log.first-attempt"
        echo "=== $target failed; retrying once (first attempt: $log.first-attempt)"
        grep -E '^✘ Test .* recorded an issue' "$log.first-attempt" | sed 's/^/FLAKY? /' || true
        rc=0
        run_target "$target" "$log" || rc=$?
        [ "$rc" -eq 0 ] && flaky_targets+=("$target")
    fi
    # Swift Testing's closing line: "Test run with N tests in M suites passed/failed ... with K issues."
    n=$(grep -Eo 'Test run with [0-9]+ tests?' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
    if [ "$rc" -ne 0 ]; then
        f=$(grep -E '^✘ Test .* failed after' "$log" | grep -vc '^✘ Test run' || true)
        [ "$f" -gt 0 ] || f=1
        failed=$((failed + f))
        passed=$((passed + n - f))
        failed_targets+=("$target")
    else
        passed=$((passed + n))
    fi
done

echo
if [ "${#flaky_targets[@]}" -gt 0 ]; then
    echo "FLAKY targets (failed once, passed on retry): ${flaky_targets[*]}"
fi
if [ "${#failed_targets[@]}" -gt 0 ]; then
    echo "failing targets: ${failed_targets[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
