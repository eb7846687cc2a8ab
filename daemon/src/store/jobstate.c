/* jobstate.c -- the legal-transition table of the job lifecycle. */
#include "jobstate.h"

static const char *jobstate_names[JOBSTATE_N] = {
    "UNSPECIFIED", "PENDING", "STARTING",   "RUNNING",   "RESTARTING",
    "SUCCEEDED",   "FAILED",  "CANCELLING", "CANCELLED",
};

#define P  (1u << JOBSTATE_PENDING)
#define ST (1u << JOBSTATE_STARTING)
#define RU (1u << JOBSTATE_RUNNING)
#define RE (1u << JOBSTATE_RESTARTING)
#define SU (1u << JOBSTATE_SUCCEEDED)
#define FA (1u << JOBSTATE_FAILED)
#define CI (1u << JOBSTATE_CANCELLING)
#define CD (1u << JOBSTATE_CANCELLED)

/* Row: from; bits: the states it may go to. A job that finishes before its
 * first progress report goes STARTING -> SUCCEEDED directly; a job being
 * cancelled may still finish on its own (CANCELLING -> SUCCEEDED/FAILED).
 * RESTARTING -> FAILED is a restart budget found exhausted at reschedule;
 * queued jobs are cancelled at once (no workers to wait for). */
static const unsigned jobstate_next[JOBSTATE_N] = {
    [JOBSTATE_PENDING] = ST | FA | CD,      [JOBSTATE_STARTING] = RU | RE | SU | FA | CI,
    [JOBSTATE_RUNNING] = RE | SU | FA | CI, [JOBSTATE_RESTARTING] = ST | FA | CD,
    [JOBSTATE_CANCELLING] = SU | FA | CD,
};

const char *jobstate_name(int s) {
    return s >= 0 && s < JOBSTATE_N ? jobstate_names[s] : "UNKNOWN";
}

int jobstate_can(int from, int to) {
    if (from < 0 || from >= JOBSTATE_N || to <= 0 || to >= JOBSTATE_N) return 0;
    return (jobstate_next[from] >> to) & 1u;
}

int jobstate_terminal(int s) {
    return s == JOBSTATE_SUCCEEDED || s == JOBSTATE_FAILED || s == JOBSTATE_CANCELLED;
}

int jobstate_queued(int s) {
    return s == JOBSTATE_PENDING || s == JOBSTATE_RESTARTING;
}

int jobstate_active(int s) {
    return s == JOBSTATE_STARTING || s == JOBSTATE_RUNNING || s == JOBSTATE_CANCELLING;
}
