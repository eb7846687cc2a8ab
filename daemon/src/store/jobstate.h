/* jobstate.h -- the job lifecycle state machine (prefix jobstate_).
 *
 * The numeric values are those of e2.v1.JobState in coordinator.proto, so a
 * state crosses the store, the scheduler and the wire unchanged. Which
 * transitions are legal is one table (jobstate.c); every transition the
 * daemon makes goes through e2_jobstate_can() and is stored as an event. */
#ifndef E2D_JOBSTATE_H
#define E2D_JOBSTATE_H

typedef enum {
    E2_JOBSTATE_UNSPECIFIED = 0,
    E2_JOBSTATE_PENDING = 1,    /* queued, never started */
    E2_JOBSTATE_STARTING = 2,   /* gang assigned, no step reported yet */
    E2_JOBSTATE_RUNNING = 3,    /* at least one step reported this attempt */
    E2_JOBSTATE_RESTARTING = 4, /* attempt ended by an infra fault; re-queued */
    E2_JOBSTATE_SUCCEEDED = 5,
    E2_JOBSTATE_FAILED = 6,
    E2_JOBSTATE_CANCELLING = 7, /* cancel sent, waiting for workers or grace */
    E2_JOBSTATE_CANCELLED = 8,
    E2_JOBSTATE_N
} e2_jobstate_t;

/* "PENDING", ... ; "UNKNOWN" for an out-of-range value. */
const char *e2_jobstate_name(int s);
/* 1 when from -> to is a legal transition. */
int e2_jobstate_can(int from, int to);
/* SUCCEEDED, FAILED and CANCELLED: nothing follows them. */
int e2_jobstate_terminal(int s);
/* PENDING and RESTARTING: waiting for the scheduler. */
int e2_jobstate_queued(int s);
/* STARTING, RUNNING and CANCELLING: workers hold the job. */
int e2_jobstate_active(int s);

#endif
