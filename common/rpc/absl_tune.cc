/* absl_tune.cc: turns off Abseil's mutex deadlock detection, which gRPC
 * pays for on every lock. Debian builds Abseil without NDEBUG, so
 * absl::Mutex defaults to OnDeadlockCycle::kAbort: each Lock records the
 * lock in a process-wide graph under a global spin lock
 * (GraphCycles::GetId, ~5 % of e2d's CPU on GetJob, and lock traffic
 * between gRPC's threads). gRPC's own release builds run without it.
 * Only gRPC uses Abseil in e2's processes. */
#include <absl/synchronization/mutex.h>

extern "C" void e2_rpc__absl_tune(void);

extern "C" void e2_rpc__absl_tune(void) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}
