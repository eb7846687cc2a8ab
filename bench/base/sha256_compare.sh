#!/bin/sh
# SHA-256 throughput of this tree's e2_sha256_file against the one of an
# older commit (default: the last one with e2's own SHA-256 code, SHA-NI
# and portable), on one 1 GiB file, passes interleaved in one session so
# that a busy machine slows all alike. Both are compiled here with the
# same flags (CMake's Release: -O3 -DNDEBUG).
#
#   bench/base/sha256_compare.sh [old-commit] [MiB] [rounds]
#                                     defaults: f2db727 1024 3
set -eu
cd "$(dirname "$0")/../.."
old=${1:-f2db727}
mib=${2:-1024}
rounds=${3:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/old"
for f in base.h sha256.c file.c; do
    git show "$old:common/base/$f" > "$tmp/old/$f"
done
cc=${CC:-cc}
flags="-O3 -DNDEBUG -std=c11 -D_GNU_SOURCE"
$cc $flags -I"$tmp/old" bench/base/bench_sha256.c "$tmp/old/sha256.c" \
    "$tmp/old/file.c" -lm -o "$tmp/bench_old"
$cc $flags -Icommon/base bench/base/bench_sha256.c common/base/sha256.c \
    common/base/file.c -lcrypto -lm -o "$tmp/bench_new"
echo "old: $old ($(git log -1 --format=%cd --date=short "$old")), new: $(git rev-parse --short HEAD) + worktree"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
for r in $(seq "$rounds"); do
    echo "== round $r"
    printf 'old (SHA-NI when the CPU has it): '
    "$tmp/bench_old" "$tmp/data" "$mib" 3 | tail -1
    printf 'old, E2_SHA256_PORTABLE=1:         '
    E2_SHA256_PORTABLE=1 "$tmp/bench_old" "$tmp/data" "$mib" 3 | tail -1
    printf 'new (libcrypto EVP):               '
    "$tmp/bench_new" "$tmp/data" "$mib" 3 | tail -1
    # libcrypto's code for a CPU without SHA-NI (CPUID 7 EBX bit 29 off).
    printf 'new, OPENSSL_ia32cap=:~0x20000000: '
    OPENSSL_ia32cap=":~0x20000000" "$tmp/bench_new" "$tmp/data" "$mib" 3 | tail -1
done
