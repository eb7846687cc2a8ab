#!/bin/sh
# Installs the Debian 12 packages e2 builds and runs with; with --test also
# those only its tests need (tests/run.sh asks for them, the quickstart does
# not). Idempotent: a package already present is left alone, so the README's
# commands and CI can call this every time at no cost.
#   deploy/install-deps.sh          build + runtime packages
#   deploy/install-deps.sh --test   the same, plus the test-only packages
set -eu

PKGS="build-essential cmake pkg-config git python3
libopenblas-dev libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
libprotobuf-dev protobuf-compiler libuv1-dev libsqlite3-dev libjansson-dev
libgloo-dev python3-grpcio python3-protobuf python3-numpy python3-matplotlib
libsystemd-dev libmicrohttpd-dev libssl-dev openssl fortunes systemd iproute2"

# Test-only: headless Chromium for the status-page test (tests/http);
# venv + pip for the throwaway transformers venvs (tests/compat) and the
# Python client's install test (tests/python); Debian's CPU-only torch for
# transformers' model load in tests/compat; clang and its fuzzer runtime
# for the libFuzzer targets (tests/fuzz); clang-format for CI's format check.
TEST_PKGS="chromium python3-venv python3-pip python3-torch clang libclang-rt-14-dev
clang-format"

case "${1:-}" in
"") ;;
--test) PKGS="$PKGS $TEST_PKGS" ;;
-h|--help)
    sed -n '2,7s/^# \{0,1\}//p' "$0"
    exit 0 ;;
*)
    echo "install-deps: unknown option '$1' (use --test for the test packages)" >&2
    exit 64 ;;
esac

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
