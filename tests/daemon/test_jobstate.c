/* test_jobstate.c -- the job lifecycle transition table: the legal edges,
 * terminal states that lead nowhere, and the names used in logs. */
#include "jobstate.h"

#include <string.h>

#include "check.h"

int main(void) {
    /* The happy path and the fault paths. */
    CHECK(e2_jobstate_can(E2_JOBSTATE_PENDING, E2_JOBSTATE_STARTING));
    CHECK(e2_jobstate_can(E2_JOBSTATE_STARTING, E2_JOBSTATE_RUNNING));
    CHECK(e2_jobstate_can(E2_JOBSTATE_RUNNING, E2_JOBSTATE_SUCCEEDED));
    CHECK(e2_jobstate_can(E2_JOBSTATE_RUNNING, E2_JOBSTATE_RESTARTING));
    CHECK(e2_jobstate_can(E2_JOBSTATE_RESTARTING, E2_JOBSTATE_STARTING));
    CHECK(e2_jobstate_can(E2_JOBSTATE_RUNNING, E2_JOBSTATE_CANCELLING));
    CHECK(e2_jobstate_can(E2_JOBSTATE_CANCELLING, E2_JOBSTATE_CANCELLED));
    CHECK(e2_jobstate_can(E2_JOBSTATE_PENDING, E2_JOBSTATE_CANCELLED));
    /* Shortcuts that must not exist. */
    CHECK(!e2_jobstate_can(E2_JOBSTATE_PENDING, E2_JOBSTATE_RUNNING));
    CHECK(!e2_jobstate_can(E2_JOBSTATE_PENDING, E2_JOBSTATE_SUCCEEDED));
    CHECK(!e2_jobstate_can(E2_JOBSTATE_RUNNING, E2_JOBSTATE_CANCELLED));
    CHECK(!e2_jobstate_can(E2_JOBSTATE_RUNNING, E2_JOBSTATE_PENDING));
    CHECK(!e2_jobstate_can(E2_JOBSTATE_RESTARTING, E2_JOBSTATE_RUNNING));
    CHECK(!e2_jobstate_can(E2_JOBSTATE_CANCELLING, E2_JOBSTATE_RUNNING));
    CHECK(!e2_jobstate_can(E2_JOBSTATE_RUNNING, E2_JOBSTATE_RUNNING));
    CHECK(!e2_jobstate_can(-1, E2_JOBSTATE_PENDING));
    CHECK(!e2_jobstate_can(E2_JOBSTATE_PENDING, E2_JOBSTATE_N));
    /* Terminal states lead nowhere, and only they are terminal. */
    for (int from = 0; from < E2_JOBSTATE_N; from++) {
        int out = 0;
        for (int to = 0; to < E2_JOBSTATE_N; to++) out += e2_jobstate_can(from, to);
        CHECK(e2_jobstate_terminal(from) ==
              (from == E2_JOBSTATE_SUCCEEDED || from == E2_JOBSTATE_FAILED ||
               from == E2_JOBSTATE_CANCELLED));
        CHECK(!e2_jobstate_terminal(from) == (out > 0 || from == 0));
        /* A non-terminal state can always reach a terminal one. */
        if (from && !e2_jobstate_terminal(from))
            CHECK(e2_jobstate_can(from, E2_JOBSTATE_FAILED) ||
                  e2_jobstate_can(from, E2_JOBSTATE_CANCELLED));
    }
    CHECK(strcmp(e2_jobstate_name(E2_JOBSTATE_CANCELLING), "CANCELLING") == 0);
    CHECK(strcmp(e2_jobstate_name(42), "UNKNOWN") == 0);
    return 0;
}
