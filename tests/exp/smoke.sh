#!/bin/sh
# smoke.sh E2WORKER EXAMPLE_DIR SCRATCH -- runs the replication driver in
# tiny mode twice (2 parallel jobs, then 1, with the ablation switch) and
# checks its outputs with check_results.py; then the science driver's quick
# mode twice, checked by check_science.py.
set -eu
e2worker=$1
example=$2
scratch=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$scratch"
mkdir -p "$scratch"
/usr/bin/python3 "$example/replicate.py" --e2worker "$e2worker" --mode tiny --ablations \
    --jobs 2 --out "$scratch/a" >"$scratch/a.log" 2>&1 || { cat "$scratch/a.log"; exit 1; }
/usr/bin/python3 "$example/replicate.py" --e2worker "$e2worker" --mode tiny --ablations \
    --jobs 1 --out "$scratch/b" >"$scratch/b.log" 2>&1 || { cat "$scratch/b.log"; exit 1; }
/usr/bin/python3 "$here/check_results.py" "$scratch/a" "$scratch/b"
# The science driver (examples/e2-science) in its quick mode, twice (2
# parallel jobs, then 1): the same numbers, every arm and window present.
science=$(cd "$example/../e2-science" && pwd)
/usr/bin/python3 "$science/driver.py" --e2worker "$e2worker" --quick --jobs 2 \
    --out "$scratch/s1" >"$scratch/s1.log" 2>&1 || { cat "$scratch/s1.log"; exit 1; }
/usr/bin/python3 "$science/driver.py" --e2worker "$e2worker" --quick --jobs 1 \
    --out "$scratch/s2" >"$scratch/s2.log" 2>&1 || { cat "$scratch/s2.log"; exit 1; }
/usr/bin/python3 "$here/check_science.py" "$scratch/s1" "$scratch/s2"
rm -rf "$scratch"
