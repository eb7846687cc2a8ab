/* waiter.c -- calls parked on the loop until something happens (a job
 * changes, a log grows, a rendezvous key appears). A waiter lives on one
 * list of e2d_server; when its client goes away, the RPC layer's cancel
 * callback finishes the call and frees the waiter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2d.h"

static void e2d_waiter_cancelled(e2_rpc_call *call) {
    e2d_waiter *w = e2_rpc_call_get_data(call);
    if (w) e2d_waiter_done(w, E2_RPC_CANCELLED, "client went away");
}

e2d_waiter *e2d_waiter_add(e2d_waiter **list, e2_rpc_call *call, const char *job) {
    e2d_waiter *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->call = call;
    snprintf(w->job, sizeof w->job, "%s", job);
    w->list = list;
    w->next = *list;
    *list = w;
    e2_rpc_call_set_data(call, w);
    e2_rpc_call_on_cancel(call, e2d_waiter_cancelled);
    return w;
}

void e2d_waiter_done(e2d_waiter *w, e2_rpc_status code, const char *msg) {
    e2_rpc_call_set_data(w->call, NULL);
    e2_rpc_call_finish(w->call, code, msg);
    e2d_waiter_remove(w);
}

void e2d_waiter_remove(e2d_waiter *w) {
    e2d_waiter **p;
    for (p = w->list; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    free(w->offsets);
    free(w->key);
    free(w);
}

static void e2d_waiters_finish(e2d_waiter **list, e2_rpc_status code, const char *msg) {
    while (*list) e2d_waiter_done(*list, code, msg);
}

void e2d_waiters_finish_all(e2d_server *srv) {
    e2d_waiters_finish(&srv->watches, E2_RPC_UNAVAILABLE, "e2d is shutting down");
    e2d_waiters_finish(&srv->follows, E2_RPC_UNAVAILABLE, "e2d is shutting down");
    e2d_waiters_finish(&srv->rdvwaits, E2_RPC_UNAVAILABLE, "e2d is shutting down");
}
