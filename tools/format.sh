#!/bin/sh
# tools/format.sh -- formats e2's C, C++ and CUDA sources with the repository's
# .clang-format (clang-format 14, Debian 12's). `--check` changes nothing and
# exits 1 naming each file the formatter would change (CI runs it).
set -eu
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null 2>&1 || {
    echo "format.sh: clang-format not found (apt-get install clang-format)" >&2
    exit 2
}
files=$(git ls-files '*.c' '*.h' '*.cc' '*.cu' '*.cuh')
if [ "${1:-}" = "--check" ]; then
    bad=0
    for f in $files; do
        if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
            echo "format.sh: $f is not formatted (run tools/format.sh)"
            bad=1
        fi
    done
    [ "$bad" -eq 0 ] && echo "format.sh: $(echo "$files" | wc -l) files formatted"
    exit "$bad"
fi
# shellcheck disable=SC2086
clang-format -i $files
