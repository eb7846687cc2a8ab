# lib.sh -- shell helpers shared by the scripted tests (sourced; they set
# E2W to e2worker and define fail).

# make_data: a small English text (200 numbered lines) prepared into token
# shards data_train_*.bin / data_val_*.bin in the current directory.
make_data() {
    i=0
    while [ $i -lt 200 ]; do
        echo "The quick brown fox number $i jumps over the lazy dog. A journey of a thousand miles begins with one step."
        i=$((i + 1))
    done >text.txt
    "$E2W" prep --out data --val-fraction 0.1 text.txt >/dev/null || fail "prep"
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds (0) or
# SECONDS pass (1).
wait_until() {
    limit=$1; shift
    n=0
    while ! "$@"; do
        n=$((n + 1))
        [ $n -gt $((limit * 10)) ] && return 1
        sleep 0.1
    done
}
