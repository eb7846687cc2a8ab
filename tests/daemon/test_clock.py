"""test_clock -- e2d measures durations on the monotonic clock: a step of
the wall clock (CLOCK_REALTIME, shifted in e2d alone by the clockshift
LD_PRELOAD library) neither keeps a silent worker alive nor loses a live
one. Usage: test_clock.py [case ...] (E2D_BIN and E2D_CLOCKSHIFT set)."""

import os
import struct
import tempfile
import time

import e2dtest as t


class Clock:
    """The offset file clockshift maps: set(ms) steps e2d's wall clock."""

    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="e2d_clock_")
        os.write(fd, struct.pack("q", 0))
        os.close(fd)

    def set(self, ms):
        fd = os.open(self.path, os.O_WRONLY)
        os.pwrite(fd, struct.pack("q", ms), 0)
        os.close(fd)

    def env(self):
        lib = os.environ.get("E2D_CLOCKSHIFT")
        assert lib and os.path.exists(lib), "E2D_CLOCKSHIFT must name the library"
        return {"LD_PRELOAD": lib, "E2D_TEST_CLOCK_FILE": self.path,
                # a sanitizer build's runtime must come first otherwise
                "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
                ":verify_asan_link_order=0"}


def _daemon(clock):
    return t.Daemon("--shutdown-grace", "1", heartbeat_timeout=2.0,
                    env=clock.env())


def _run(fn):
    clock = Clock()
    d = _daemon(clock)
    c = d.start()
    try:
        fn(d, c, clock)
    except BaseException:
        print(d.log())
        raise
    finally:
        c.close()
        rc = d.stop()
        d.cleanup()
        os.unlink(clock.path)
    assert rc == 0, rc


def _state(c, wid):
    return {w.id: w.state for w in
            c.call("ListWorkers", include_lost=True).workers}[wid]


def wall_clock_step_back_still_loses_a_silent_worker():
    def case(d, c, clock):
        w = t.FakeWorker(c)
        w.beat()
        clock.set(-3600 * 1000)  # the wall clock jumps back one hour
        # The worker goes silent: LOST after the 2 s heartbeat timeout.
        deadline = time.time() + 30
        while time.time() < deadline and _state(c, w.id) != t.LOST:
            time.sleep(0.1)
        assert _state(c, w.id) == t.LOST, "a silent worker stayed alive"
    _run(case)


def wall_clock_step_forward_keeps_a_live_worker():
    def case(d, c, clock):
        w = t.FakeWorker(c)
        with t.keep_beating(w):
            # Seen by e2d at least once after the jump forward: the first
            # heartbeat after it must not find the worker lost, nor the
            # cron in between.
            seen = c.call("ListWorkers").workers[0].last_heartbeat_unix_ms
            clock.set(3600 * 1000)
            deadline = time.time() + 30
            while time.time() < deadline:
                ws = c.call("ListWorkers", include_lost=True).workers
                if ws[0].last_heartbeat_unix_ms > seen + 3600 * 1000:
                    break
                time.sleep(0.05)
            assert ws[0].last_heartbeat_unix_ms > seen + 3600 * 1000, ws
            assert _state(c, w.id) == t.IDLE, "a live worker was lost"
            assert "lost" not in d.log(), d.log()
    _run(case)


if __name__ == "__main__":
    t.run_cases([wall_clock_step_back_still_loses_a_silent_worker,
                 wall_clock_step_forward_keeps_a_live_worker])
