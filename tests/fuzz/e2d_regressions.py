"""e2d_regressions -- inputs the fuzz targets found, sent to the real e2d
over its real socket: e2d must answer them and stay up.
Usage: e2d_regressions.py [case ...] (E2D_BIN set)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "daemon"))

import e2dtest as t  # noqa: E402


def _raw_submit(c, spec_bytes):
    body = b"\x0a" + bytes([len(spec_bytes)]) + spec_bytes
    assert len(spec_bytes) < 128
    return t.MSG["e2.v1.SubmitJobResponse"].FromString(c.raw("SubmitJob", body))


@t.with_daemon()
def label_without_value(d, c):
    """A SubmitJob whose labels map entry has a key and no value (fuzz_rpc,
    regressions/rpc/map_entry_without_value) crashed e2d with SIGSEGV while
    it printed the spec for storage. It is stored with the value ""."""
    spec = t.small_spec("nolabelvalue").SerializeToString() + \
        b"\x12\x06\x0a\x04team"
    r = _raw_submit(c, spec)
    assert r.created and d.proc.poll() is None
    job = c.job(r.job.id)
    assert dict(job.spec.labels) == {"team": ""}, job.spec.labels
    listed = c.call("ListJobs", labels=["team="]).jobs
    assert [j.id for j in listed] == [r.job.id], listed


if __name__ == "__main__":
    t.run_cases([label_without_value])
