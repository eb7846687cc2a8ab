#!/usr/bin/python3
"""check_layers.py -- e2d's layers go one way (docs/architecture.md).

The folders of daemon/src are layers, lowest first: base, store, jobs,
sched, api, then main.c. Inside sched/, local.c sits below sched.c and
ckpt.c (the scheduler asks it; it reports through a callback). A file may
include a header of its own layer or of a lower one, and common/ headers;
never a header of a higher layer, nor one from worker/ or kernels/.

Usage:
  check_layers.py includes ROOT      the tree under ROOT (the project root)
  check_layers.py symbols LIB...     the layer libraries (libe2d_<layer>.a):
                                     no layer uses a symbol that only a
                                     higher layer defines
  check_layers.py selftest ROOT      a copy of the tree with violations
                                     planted: each must be caught
  check_layers.py prefix [--allow=P1,P2] LIB...
                                     every global symbol of the libraries
                                     starts with one of the prefixes (by
                                     default e2_ or e2d_, for daemon/ and
                                     common/; worker/ and kernels/ have
                                     their own: docs/architecture.md)
Exit status 0 when clean, 1 with one line per violation.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

LAYERS = ["base", "store", "jobs", "sched", "api"]
# Files ranked apart from their folder: local.* is below the rest of sched/.
OVERRIDES = {"sched/local.c": 3.0, "sched/local.h": 3.0}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
GENERATED = re.compile(r"^e2/v1/[a-z_]+\.pb-c\.h$")


def rank_of(rel):
    """rel: a path under daemon/src."""
    if rel in OVERRIDES:
        return OVERRIDES[rel]
    top = rel.split("/")[0]
    if top in LAYERS:
        return LAYERS.index(top) + (0.5 if top == "sched" else 0.0)
    return len(LAYERS)  # main.c and anything else at the root


def headers_under(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".h"):
                out.setdefault(f, os.path.join(d, f))
    return out


def check_includes(root):
    src = os.path.join(root, "daemon", "src")
    own = {}  # header name -> rel path under daemon/src
    for d, _, files in os.walk(src):
        for f in files:
            if f.endswith(".h"):
                rel = os.path.relpath(os.path.join(d, f), src)
                if f in own:
                    return ["daemon/src/%s and daemon/src/%s: two headers named %s; "
                            "give one another name" % (own[f], rel, f)]
                own[f] = rel
    common = headers_under(os.path.join(root, "common"))
    forbidden = {}
    for top in ("worker", "kernels"):
        for name, path in headers_under(os.path.join(root, top)).items():
            forbidden.setdefault(name, os.path.relpath(path, root))
    bad = []
    for d, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            rel = os.path.relpath(os.path.join(d, f), src)
            r = rank_of(rel)
            with open(os.path.join(d, f), encoding="utf-8") as fh:
                text = fh.read()
            for m in INCLUDE.finditer(text):
                inc = m.group(1)
                line = text.count("\n", 0, m.start()) + 1
                where = "daemon/src/%s:%d" % (rel, line)
                name = os.path.basename(inc)
                if inc.startswith("..") or inc.split("/")[0] in ("worker", "kernels"):
                    bad.append('%s: #include "%s" reaches outside daemon/ and common/' %
                               (where, inc))
                elif "/" not in inc and name in own:
                    hr = rank_of(own[name])
                    if hr > r:
                        bad.append('%s: #include "%s" goes up a layer (daemon/src/%s); '
                                   "move what is needed down, or pass a callback" %
                                   (where, inc, own[name]))
                elif "/" not in inc and name in common:
                    continue
                elif GENERATED.match(inc):
                    continue
                elif name in forbidden:
                    bad.append('%s: #include "%s" is worker or kernel code (%s); e2d '
                               "may use only common/" % (where, inc, forbidden[name]))
                else:
                    bad.append('%s: #include "%s" is no header of daemon/src or common/' %
                               (where, inc))
    return bad


def check_symbols(libs):
    """libs: paths of libe2d_<layer>.a in any order."""
    defined, undefined = {}, {}
    for lib in libs:
        layer = re.sub(r"^libe2d_|\.a$", "", os.path.basename(lib))
        if layer not in LAYERS:
            return ["%s: not a layer library (libe2d_<%s>.a)" % (lib, "|".join(LAYERS))]
        out = subprocess.run(["nm", "-g", "--defined-only", lib], capture_output=True,
                             text=True, check=True).stdout
        for m in re.finditer(r"^[0-9a-f]+ [TDBRC] (\S+)$", out, re.M):
            defined[m.group(1)] = layer
        out = subprocess.run(["nm", "-g", "--undefined-only", lib], capture_output=True,
                             text=True, check=True).stdout
        undefined[layer] = set(re.findall(r"^\s+U (\S+)$", out, re.M))
    bad = []
    for layer, syms in undefined.items():
        for s in sorted(syms):
            d = defined.get(s)
            if d is not None and LAYERS.index(d) > LAYERS.index(layer):
                bad.append("libe2d_%s.a uses %s, defined in the higher layer %s/" %
                           (layer, s, d))
    return bad


def check_prefix(libs, allow=("e2_", "e2d_")):
    """allow: the prefixes a global name may start with. Names that begin
    with "__" (reserved: e.g. ASan's __odr_asan.<name> in a sanitizer
    build) or are C++-mangled (_Z..., the CUDA kernels' device stubs) are
    the compiler's, not ours."""
    bad = []
    for lib in libs:
        out = subprocess.run(["nm", "-g", "--defined-only", lib], capture_output=True,
                             text=True, check=True).stdout
        names = re.findall(r"^[0-9a-f]+ [TDBRC] (\S+)$", out, re.M)
        if not names:
            bad.append("%s: no global symbols read (is it a library?)" % lib)
        for n in names:
            if not n.startswith(tuple(allow)) and not n.startswith(("_Z", "__")):
                bad.append("%s: global %s has none of the prefixes %s; name it %s%s (or "
                           "make it static)" % (os.path.basename(lib), n, "/".join(allow),
                                                allow[0], n))
    return bad


def plant(root, rel, text):
    p = os.path.join(root, "daemon", "src", rel)
    with open(p, encoding="utf-8") as fh:
        body = fh.read()
    with open(p, "w", encoding="utf-8") as fh:
        fh.write(text + "\n" + body)


def selftest(root):
    """Each planted violation, alone in a fresh copy, must be reported."""
    cases = [
        ("store/store.c", '#include "e2d.h"', "goes up a layer"),
        ("jobs/jobs.c", '#include "scheduler.h"', "goes up a layer"),
        ("sched/local.c", '#include "scheduler.h"', "goes up a layer"),
        ("sched/sched.c", '#include "api.h"', "goes up a layer"),
        ("base/log.c", '#include "k.h"', "worker or kernel code"),
        ("api/api.c", '#include "../../../worker/train/train.h"', "outside daemon/"),
    ]
    if check_includes(root):
        print("selftest: the tree itself is not clean; run `includes` first")
        return 1
    failed = 0
    for rel, inc, want in cases:
        with tempfile.TemporaryDirectory() as tmp:
            for top in ("daemon", "common", "worker", "kernels"):
                shutil.copytree(os.path.join(root, top), os.path.join(tmp, top),
                                ignore=shutil.ignore_patterns("*.py", "*.md", "*.txt"))
            plant(tmp, rel, inc)
            got = check_includes(tmp)
            hit = [g for g in got if g.startswith("daemon/src/%s:1:" % rel) and want in g]
            if not hit:
                print("selftest: %s planted in %s was not caught (got %r)" % (inc, rel, got))
                failed = 1
            else:
                print("selftest: caught: %s" % hit[0])
    return failed


def main(argv):
    if len(argv) < 3 or argv[1] not in ("includes", "symbols", "selftest", "prefix"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if argv[1] == "selftest":
        return selftest(argv[2])
    if argv[1] == "includes":
        bad = check_includes(argv[2])
    elif argv[1] == "symbols":
        bad = check_symbols(argv[2:])
    elif argv[2].startswith("--allow="):
        bad = check_prefix(argv[3:], tuple(argv[2][len("--allow="):].split(",")))
    else:
        bad = check_prefix(argv[2:])
    for b in bad:
        print(b)
    if not bad:
        print("check_layers %s: clean" % argv[1])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
