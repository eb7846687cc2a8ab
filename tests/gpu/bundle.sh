#!/bin/sh
# tests/gpu/bundle.sh -- builds e2's GPU checks HERE and packs them for the
# GPU machine, which has nvcc, CMake and PyTorch but none of e2's C
# dependencies (gRPC, protobuf-c, libuv, SQLite, jansson, OpenBLAS, Gloo) and
# cannot install any (docs: kernels/cuda/README.md, "Running the device
# check").
#
#   sh tests/gpu/bundle.sh          # -> build-gpu-carry/e2-gpu.tar.xz
#
# Builds in build-gpu-bundle/ with -DE2_CUDA=ON -DE2_NATIVE=OFF (the GPU
# machine's CPU differs from this one) -DCMAKE_CUDA_ARCHITECTURES=90 (H100,
# H200; E2_CUDA_ARCH=80 or "80;90" for others), then packs into one tar.xz:
#   bin/   gpu_probe, gpu_check, nccl_check, e2worker
#   lib/   every shared library they load (ldd) except the ones the device
#          brings or must bring itself: glibc (libc, libm, libpthread, libdl,
#          librt, ld-linux), libstdc++, libgcc_s, the driver (libcuda),
#          cuBLAS/cuBLASLt and NCCL
#   lib-fallback/  this machine's libstdc++ and libgcc_s, which run.sh adds
#          only when the device's own are too old for the binaries
#   tests/gpu/*.sh and MANIFEST (commit, architectures, libraries, the
#          newest glibc symbol version the binaries need)
#
# The output folder build-gpu-carry/ is ignored by git (/build*/), so the
# device tool does not copy it on its own: name it in the run's "carry"
# (ignored paths that travel with the working tree, 64 MiB in all). Then, on
# the device: bash tests/gpu/run.sh --prebuilt build-gpu-carry/e2-gpu.tar.xz
set -eu
cd "$(dirname "$0")/../.."
root=$PWD
arch=${E2_CUDA_ARCH:-90}
dir=build-gpu-bundle
out=build-gpu-carry
jobs=${E2_BUNDLE_JOBS:-2}
# The sources built: the commit, and whether the tree had changes on top.
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (plus uncommitted changes)')"

launch=""
if command -v ccache >/dev/null 2>&1; then
    launch="-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
fi
mkdir -p "$dir"
# shellcheck disable=SC2086 # $launch is two words or none
nice -n 10 cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DE2_CUDA=ON -DE2_NATIVE=OFF \
    "-DCMAKE_CUDA_ARCHITECTURES=$arch" $launch >"$dir/bundle-configure.log" 2>&1 ||
    { tail -20 "$dir/bundle-configure.log"; echo "bundle: configure failed"; exit 1; }
nice -n 10 cmake --build "$dir" -j "$jobs" --target gpu_probe gpu_check nccl_check e2worker \
    >"$dir/bundle-build.log" 2>&1 ||
    { grep -E "error|Error" "$dir/bundle-build.log" | head -30; echo "bundle: build failed"; exit 1; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/e2-gpu-bundle-XXXXXX")
trap 'rm -rf "$stage"' EXIT
b=$stage/e2-gpu
mkdir -p "$b/bin" "$b/lib" "$b/lib-fallback" "$b/tests/gpu"
bins="$dir/tests/gpu/gpu_probe $dir/tests/gpu/gpu_check $dir/tests/gpu/nccl_check $dir/worker/cli/e2worker"
for f in $bins; do cp "$f" "$b/bin/"; done
cp tests/gpu/*.sh "$b/tests/gpu/"

# Libraries: every "name => path" line of ldd, less the device's own.
for f in $bins; do ldd "$f"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
while read -r name path; do
    case $name in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | \
        ld-linux* | libcuda.so.* | libcublas* | libnccl.so.* | linux-vdso*) ;;
    libstdc++.so.* | libgcc_s.so.*) cp -L "$path" "$b/lib-fallback/$name" ;;
    *) cp -L "$path" "$b/lib/$name" ;;
    esac
done

# What the device must provide, and how new its glibc must be.
need_glibc=$(for f in "$b"/bin/* "$b"/lib/*; do objdump -T "$f" 2>/dev/null; done |
    grep -o 'GLIBC_[0-9.]*' | sort -u -V | tail -1)
need_cxx=$(for f in "$b"/bin/* "$b"/lib/*; do objdump -T "$f" 2>/dev/null; done |
    grep -o 'GLIBCXX_[0-9.]*' | sort -u -V | tail -1)
{
    echo "e2 GPU bundle"
    echo "commit: $commit"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), CUDA architectures $arch"
    echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
    echo "device must provide: $(for f in $bins; do ldd "$f"; done | awk '$2 == "=>" {print $1}' |
        grep -E '^(libcuda\.so|libcublas|libnccl)' | sort -u | tr '\n' ' ')"
    echo "newest glibc symbol needed: ${need_glibc:-none}; newest libstdc++ symbol: ${need_cxx:-none}"
    echo "bundled libraries:"
    ls "$b/lib" | sed 's/^/  /'
} >"$b/MANIFEST"

mkdir -p "$out"
tar -C "$stage" -cJf "$out/e2-gpu.tar.xz" e2-gpu
size=$(wc -c <"$out/e2-gpu.tar.xz")
cat "$b/MANIFEST"
echo "bundle: $out/e2-gpu.tar.xz, $size bytes ($((size / 1048576)) MiB; carry limit 64 MiB)"
[ "$size" -lt $((60 * 1048576)) ] || { echo "bundle: too large to carry"; exit 1; }
