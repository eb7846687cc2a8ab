/* jobstate.h -- the job lifecycle state machine (prefix jobstate_).
 *
 * The numeric values are those of e2.v1.JobState in coordinator.proto, so a
 * state crosses the store, the scheduler and the wire unchanged. Which
 * transitions are legal is one table (jobstate.c); every transition the
 * daemon makes goes through jobstate_can() and is stored as an event. */
#ifndef E2D_JOBSTATE_H
#define E2D_JOBSTATE_H

typedef enum {
    JOBSTATE_UNSPECIFIED = 0,
    JOBSTATE_PENDING = 1,    /* queued, never started */
    JOBSTATE_STARTING = 2,   /* gang assigned, no step reported yet */
    JOBSTATE_RUNNING = 3,    /* at least one step reported this attempt */
    JOBSTATE_RESTARTING = 4, /* attempt ended by an infra fault; re-queued */
    JOBSTATE_SUCCEEDED = 5,
    JOBSTATE_FAILED = 6,
    JOBSTATE_CANCELLING = 7, /* cancel sent, waiting for workers or grace */
    JOBSTATE_CANCELLED = 8,
    JOBSTATE_N
} jobstate_t;

/* "PENDING", ... ; "UNKNOWN" for an out-of-range value. */
const char *jobstate_name(int s);
/* 1 when from -> to is a legal transition. */
int jobstate_can(int from, int to);
/* SUCCEEDED, FAILED and CANCELLED: nothing follows them. */
int jobstate_terminal(int s);
/* PENDING and RESTARTING: waiting for the scheduler. */
int jobstate_queued(int s);
/* STARTING, RUNNING and CANCELLING: workers hold the job. */
int jobstate_active(int s);

#endif
