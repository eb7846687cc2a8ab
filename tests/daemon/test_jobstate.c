/* test_jobstate.c -- the job lifecycle transition table: the legal edges,
 * terminal states that lead nowhere, and the names used in logs. */
#include "jobstate.h"

#include <string.h>

#include "check.h"

int main(void) {
    /* The happy path and the fault paths. */
    CHECK(jobstate_can(JOBSTATE_PENDING, JOBSTATE_STARTING));
    CHECK(jobstate_can(JOBSTATE_STARTING, JOBSTATE_RUNNING));
    CHECK(jobstate_can(JOBSTATE_RUNNING, JOBSTATE_SUCCEEDED));
    CHECK(jobstate_can(JOBSTATE_RUNNING, JOBSTATE_RESTARTING));
    CHECK(jobstate_can(JOBSTATE_RESTARTING, JOBSTATE_STARTING));
    CHECK(jobstate_can(JOBSTATE_RUNNING, JOBSTATE_CANCELLING));
    CHECK(jobstate_can(JOBSTATE_CANCELLING, JOBSTATE_CANCELLED));
    CHECK(jobstate_can(JOBSTATE_PENDING, JOBSTATE_CANCELLED));
    /* Shortcuts that must not exist. */
    CHECK(!jobstate_can(JOBSTATE_PENDING, JOBSTATE_RUNNING));
    CHECK(!jobstate_can(JOBSTATE_PENDING, JOBSTATE_SUCCEEDED));
    CHECK(!jobstate_can(JOBSTATE_RUNNING, JOBSTATE_CANCELLED));
    CHECK(!jobstate_can(JOBSTATE_RUNNING, JOBSTATE_PENDING));
    CHECK(!jobstate_can(JOBSTATE_RESTARTING, JOBSTATE_RUNNING));
    CHECK(!jobstate_can(JOBSTATE_CANCELLING, JOBSTATE_RUNNING));
    CHECK(!jobstate_can(JOBSTATE_RUNNING, JOBSTATE_RUNNING));
    CHECK(!jobstate_can(-1, JOBSTATE_PENDING));
    CHECK(!jobstate_can(JOBSTATE_PENDING, JOBSTATE_N));
    /* Terminal states lead nowhere, and only they are terminal. */
    for (int from = 0; from < JOBSTATE_N; from++) {
        int out = 0;
        for (int to = 0; to < JOBSTATE_N; to++) out += jobstate_can(from, to);
        CHECK(jobstate_terminal(from) == (from == JOBSTATE_SUCCEEDED || from == JOBSTATE_FAILED ||
                                          from == JOBSTATE_CANCELLED));
        CHECK(!jobstate_terminal(from) == (out > 0 || from == 0));
        /* A non-terminal state can always reach a terminal one. */
        if (from && !jobstate_terminal(from))
            CHECK(jobstate_can(from, JOBSTATE_FAILED) || jobstate_can(from, JOBSTATE_CANCELLED));
    }
    CHECK(strcmp(jobstate_name(JOBSTATE_CANCELLING), "CANCELLING") == 0);
    CHECK(strcmp(jobstate_name(42), "UNKNOWN") == 0);
    return 0;
}
