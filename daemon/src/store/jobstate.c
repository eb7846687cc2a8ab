/* jobstate.c -- the legal-transition table of the job lifecycle. */
#include "jobstate.h"

static const char *jobstate_names[E2_JOBSTATE_N] = {
    "UNSPECIFIED", "PENDING", "STARTING",   "RUNNING",   "RESTARTING",
    "SUCCEEDED",   "FAILED",  "CANCELLING", "CANCELLED",
};

#define P  (1u << E2_JOBSTATE_PENDING)
#define ST (1u << E2_JOBSTATE_STARTING)
#define RU (1u << E2_JOBSTATE_RUNNING)
#define RE (1u << E2_JOBSTATE_RESTARTING)
#define SU (1u << E2_JOBSTATE_SUCCEEDED)
#define FA (1u << E2_JOBSTATE_FAILED)
#define CI (1u << E2_JOBSTATE_CANCELLING)
#define CD (1u << E2_JOBSTATE_CANCELLED)

/* Row: from; bits: the states it may go to. A job that finishes before its
 * first progress report goes STARTING -> SUCCEEDED directly; a job being
 * cancelled may still finish on its own (CANCELLING -> SUCCEEDED/FAILED).
 * RESTARTING -> FAILED is a restart budget found exhausted at reschedule;
 * queued jobs are cancelled at once (no workers to wait for). */
static const unsigned jobstate_next[E2_JOBSTATE_N] = {
    [E2_JOBSTATE_PENDING] = ST | FA | CD,      [E2_JOBSTATE_STARTING] = RU | RE | SU | FA | CI,
    [E2_JOBSTATE_RUNNING] = RE | SU | FA | CI, [E2_JOBSTATE_RESTARTING] = ST | FA | CD,
    [E2_JOBSTATE_CANCELLING] = SU | FA | CD,
};

const char *e2_jobstate_name(int s) {
    return s >= 0 && s < E2_JOBSTATE_N ? jobstate_names[s] : "UNKNOWN";
}

int e2_jobstate_can(int from, int to) {
    if (from < 0 || from >= E2_JOBSTATE_N || to <= 0 || to >= E2_JOBSTATE_N) return 0;
    return (jobstate_next[from] >> to) & 1u;
}

int e2_jobstate_terminal(int s) {
    return s == E2_JOBSTATE_SUCCEEDED || s == E2_JOBSTATE_FAILED || s == E2_JOBSTATE_CANCELLED;
}

int e2_jobstate_queued(int s) {
    return s == E2_JOBSTATE_PENDING || s == E2_JOBSTATE_RESTARTING;
}

int e2_jobstate_active(int s) {
    return s == E2_JOBSTATE_STARTING || s == E2_JOBSTATE_RUNNING || s == E2_JOBSTATE_CANCELLING;
}
