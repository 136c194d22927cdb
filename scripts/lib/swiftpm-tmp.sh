# Sourced by the scripts that run SwiftPM. `swift build` and `swift test` (Swift 6 on
# Linux) leave a TemporaryDirectory.XXXXXX holding only an empty `.keep-directory` in
# $TMPDIR on every invocation (five or six each; a full test run made about 200).
# swiftpm_tmp_cleanup removes those that appeared since this file was sourced;
# a directory with anything else in it is left alone.
swiftpm_tmp_root="${TMPDIR:-/tmp}"
swiftpm_tmp_marker="$(mktemp "$swiftpm_tmp_root/qbx-swiftpm-marker.XXXXXX")"
swiftpm_tmp_cleanup() {
    local d
    for d in "$swiftpm_tmp_root"/TemporaryDirectory.*; do
        [ -d "$d" ] && [ "$d" -nt "$swiftpm_tmp_marker" ] || continue
        [ -z "$(find "$d" -mindepth 1 ! -name .keep-directory -print -quit 2>/dev/null)" ] || continue
        rm -f "$d/.keep-directory" && rmdir "$d" 2>/dev/null || true
    done
    rm -f "$swiftpm_tmp_marker"
}
