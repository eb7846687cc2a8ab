#!/bin/sh
# Installs the Debian 12 packages e2 builds and tests with. Idempotent: a
# package already present is left alone, so the README's commands and CI can
# call this every time at no cost.
set -eu

PKGS="build-essential cmake pkg-config git python3
libopenblas-dev libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
libprotobuf-dev protobuf-compiler libuv1-dev libsqlite3-dev libjansson-dev
libgloo-dev python3-grpcio python3-protobuf python3-numpy python3-matplotlib
libsystemd-dev openssl fortunes systemd chromium clang libclang-rt-14-dev"

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
