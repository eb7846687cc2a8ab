#!/bin/bash
# help_test.sh BINARY e2worker|e2ctl -- every subcommand listed by
# `BINARY --help` answers `BINARY CMD --help` and `BINARY CMD -h` with its
# own usage: exit status 0, "usage: NAME CMD" first on stdout, nothing on
# stderr. The list comes from the top-level usage, so a new command is
# covered as soon as it is documented there.
set -u
TMPDIR_HELP=$(mktemp -d)
trap 'rm -rf "$TMPDIR_HELP"' EXIT
bin=$1 name=$2
top=$("$bin" --help) || { echo "FAIL: $name --help exited $?"; exit 1; }
case $name in
e2worker) # "  run SPEC.json ...", "  version": two spaces, then the command
    cmds=$(printf '%s\n' "$top" | sed -n 's/^  \([a-z][a-z0-9-]*\)\( .*\)\{0,1\}$/\1/p') ;;
e2ctl) # the "Commands:" section up to the blank line
    cmds=$(printf '%s\n' "$top" | sed -n '/^Commands:/,/^$/p' |
           sed -n 's/^  \([a-z][a-z0-9-]*\)\( .*\)\{0,1\}$/\1/p') ;;
*) echo "FAIL: unknown binary name $name"; exit 1 ;;
esac
n=$(printf '%s\n' "$cmds" | grep -c .)
[ "$n" -ge 5 ] || { echo "FAIL: found only $n commands in $name --help:"; echo "$top"; exit 1; }
fail=0
for c in $cmds; do
    for h in --help -h; do
        out=$("$bin" "$c" "$h" 2>"$TMPDIR_HELP/err"); rc=$?
        err=$(cat "$TMPDIR_HELP/err")
        first=$(printf '%s\n' "$out" | head -n 1)
        if [ $rc -ne 0 ] || [ -n "$err" ] || [[ "$first" != "usage: $name $c"* ]]; then
            echo "FAIL: $name $c $h: exit $rc, first line '$first', stderr '$err'"
            fail=1
        elif [ "$out" = "$top" ]; then
            echo "FAIL: $name $c $h printed the top-level usage, not $c's"
            fail=1
        fi
    done
    # Help wins over the other arguments, wherever it stands.
    out=$("$bin" "$c" some-arg --help 2>/dev/null); rc=$?
    if [ $rc -ne 0 ] || [[ "$(printf '%s\n' "$out" | head -n 1)" != "usage: $name $c"* ]]; then
        echo "FAIL: $name $c some-arg --help: exit $rc"
        fail=1
    fi
done
[ $fail -eq 0 ] && echo "ok: $n $name commands answer --help and -h:" $cmds
exit $fail
