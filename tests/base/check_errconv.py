#!/usr/bin/python3
"""check_errconv.py -- one error convention (common/base/base.h).

The C code of common/, daemon/ and worker/ reports failure as base.h says:
E2_ERR, or a named E2_ code where a caller must tell a failure apart. It
never returns a negative errno constant (-EINVAL, -ENOENT, ...), -errno,
or a bare -1 (`return -1;`). This check reads the code with its comments
and string literals blanked and reports every such token.

Left out (docs/architecture.md):
  common/rpc/            its E2_RPC_E* codes mirror gRPC's

Usage:
  check_errconv.py check ROOT      the tree under ROOT (the project root)
  check_errconv.py selftest ROOT   a copy of the tree with violations
                                   planted: each must be caught, and one
                                   written in a comment or string must not
Exit status 0 when clean, 1 with one line per violation.
"""
import errno
import os
import re
import shutil
import sys
import tempfile

TOPS = ("common", "daemon", "worker")
EXEMPT_DIRS = ("common/rpc/",)
EXEMPT_FILES = set()
ERRNO_NAMES = sorted(set(errno.errorcode.values()), key=len, reverse=True)
RULES = [
    (re.compile(r"(?<![\w.])-\s*(?:%s)\b" % "|".join(ERRNO_NAMES)),
     "a negative errno constant: return E2_ERR (or a named E2_ code, base.h)"),
    (re.compile(r"(?<![\w.])-\s*errno\b"),
     "-errno: return E2_ERR with strerror(errno) in the message"),
    (re.compile(r"\breturn\s*\(?\s*-\s*1\s*\)?\s*;"),
     "a bare -1: return E2_ERR"),
]


def blank(text):
    """text with comments, string and char literals replaced by spaces
    (newlines kept, so line numbers hold)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
        else:
            out.append(c)
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", text[i:j]))
        i = j
    return "".join(out)


def in_scope(rel):
    if not rel.endswith((".c", ".h")):
        return False
    if rel.startswith(EXEMPT_DIRS) or rel in EXEMPT_FILES:
        return False
    return rel.startswith(tuple(t + "/" for t in TOPS))


def check(root):
    bad = []
    for top in TOPS:
        for d, dirs, files in os.walk(os.path.join(root, top)):
            dirs.sort()
            for f in sorted(files):
                path = os.path.join(d, f)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                if not in_scope(rel):
                    continue
                with open(path, encoding="utf-8", errors="replace") as fh:
                    code = blank(fh.read())
                for lineno, line in enumerate(code.split("\n"), 1):
                    for rx, why in RULES:
                        m = rx.search(line)
                        if m:
                            bad.append("%s:%d: %s (%s)" % (rel, lineno, m.group(0).strip(), why))
    return bad


PLANTED = "\nint e2_planted_violation(void);\nint e2_planted_violation(void) {\n%s\n}\n"


def selftest(root):
    """Each planted violation, alone in a fresh copy, must be reported; one
    in a comment or a string, or in an exempt file, must not."""
    cases = [
        ("common/shards/shards.c", "    return -ENOENT;", True),
        ("common/spec/spec.c", "    int rc = -EINVAL;\n    return rc;", True),
        ("common/pos/schemes.c", "    return e2_errf_rc(0, 0, -EIO, \"x\");", True),
        ("common/plan/plan.c", "    return -errno;", True),
        ("worker/job/drive.c", "    return -1;", True),
        ("worker/train/eval.c", "    return (-1);", True),
        ("daemon/src/store/store.c", "    return -E2BIG;", True),
        ("worker/ckpt/st_read.c", "    /* return -1; -ENOENT */\n    return 0;", False),
        ("worker/agent/agent.c", "    return (int)sizeof(\"return -1; -EINVAL\");", False),
        ("worker/data/shard.c", "    return -EINVAL;", True),
        ("common/rpc/client.c", "    return -1;", False),
    ]
    if check(root):
        print("selftest: the tree itself is not clean; run `check` first")
        return 1
    failed = 0
    for rel, body, want in cases:
        with tempfile.TemporaryDirectory() as tmp:
            for top in TOPS:
                shutil.copytree(os.path.join(root, top), os.path.join(tmp, top),
                                ignore=shutil.ignore_patterns("*.py", "*.md", "*.txt", "*.json"))
            with open(os.path.join(tmp, rel), "a", encoding="utf-8") as fh:
                fh.write(PLANTED % body)
            got = check(tmp)
            hit = [g for g in got if g.startswith(rel + ":")]
            if bool(hit) != want or (not want and got):
                print("selftest: %r in %s: %s (got %r)" %
                      (body.strip(), rel, "not caught" if want else "wrongly reported", got))
                failed = 1
            else:
                print("selftest: %s: %s" % (rel, hit[0] if hit else "left alone, as it should be"))
    return failed


def main(argv):
    if len(argv) != 3 or argv[1] not in ("check", "selftest"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if argv[1] == "selftest":
        return selftest(argv[2])
    bad = check(argv[2])
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
