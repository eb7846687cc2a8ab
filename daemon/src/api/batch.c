/* batch.c -- group commit for SubmitJob, Heartbeat and ReportDone. The
 * writing calls that arrive in one turn of the loop (the RPC layer hands
 * over every call the completion queue holds at once) are stored in one
 * SQLite transaction, each of its own writes inside a savepoint, and
 * answered together after its single commit: N concurrent clients or
 * workers pay one fsync instead of N, and no reply leaves before what it
 * acknowledges is durable.
 *
 * The rule that keeps this safe: any other entry point (every other
 * handler, the cron tick, child exits, signals) calls e2d_batch_flush
 * first, so nothing else ever writes inside an open batch or answers from
 * rows not yet committed; a member's reply goes through e2d_batch_reply,
 * which holds it while a batch is open. The loop's check phase flushes at
 * the end of each turn. */
#include <stdlib.h>

#include "api.h"
#include "base.h"
#include "scheduler.h"

int e2d_batch_join(e2d_server *srv, char *err, size_t errlen) {
    if (srv->batch_open) return 0;
    if (e2_store_begin(srv->db, err, errlen) < 0) return E2_ERR;
    srv->batch_open = 1;
    return 0;
}

void e2d_batch_reply(e2d_server *srv, e2_rpc_call *call, ProtobufCMessage *msg) {
    e2d_reply *r;
    if (!msg) {
        e2_rpc_call_finish(call, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        return;
    }
    if (!srv->batch_open || !(r = calloc(1, sizeof *r))) {
        if (srv->batch_open) e2d_batch_flush(srv);
        e2_rpc_call_reply(call, msg);
        protobuf_c_message_free_unpacked(msg, NULL);
        return;
    }
    r->call = call;
    r->msg = msg;
    *srv->batch_tail = r;
    srv->batch_tail = &r->next;
}

void e2d_batch_flush(e2d_server *srv) {
    char err[E2_ERRLEN], msg[E2_ERRLEN + 32];
    e2d_reply *r;
    int rc;
    if (!srv->batch_open) return;
    srv->batch_open = 0;
    if ((rc = e2_store_commit(srv->db, err, sizeof err)) < 0) {
        e2d_log("group commit failed: %s", err);
        snprintf(msg, sizeof msg, "state store: commit failed: %s", err);
    }
    while ((r = srv->batch)) {
        srv->batch = r->next;
        if (rc == 0)
            e2_rpc_call_reply(r->call, r->msg);
        else
            e2_rpc_call_finish(r->call, E2_RPC_INTERNAL, msg);
        protobuf_c_message_free_unpacked(r->msg, NULL);
        free(r);
    }
    srv->batch_tail = &srv->batch;
    /* Submitted jobs get a pass at once; the transitions of worker calls
     * (STARTING -> RUNNING) leave theirs to the cron, as before they
     * joined the batch (ReportDone requests its own). */
    if (srv->batch_pass && srv->sched_pending && !srv->shutting_down) e2_sched_request(srv);
    srv->batch_pass = 0;
}

static void e2d_batch_check(uv_check_t *h) {
    e2d_batch_flush(h->data);
}

void e2d_batch_start(e2d_server *srv) {
    srv->batch_tail = &srv->batch;
    uv_check_init(srv->loop, &srv->batch_check);
    srv->batch_check.data = srv;
    uv_check_start(&srv->batch_check, e2d_batch_check);
}
