/* test_methods.c -- the role a caller needs is a column of e2d's RPC method
 * tables (api.c, wapi.c): every method of the proto services must have a
 * row, and every row a role, else the method would answer UNIMPLEMENTED or
 * refuse everyone but admin. The tables are registered on a real (never
 * started) rpc server, as e2d does, and read back through
 * e2_rpc_server_method_role.
 * Usage: test_daemon_methods CASE (one ctest test per case). */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "expect.h"

/* Methods of `svc` without a row or whose row has no role; the count. */
static int missing_roles(e2_rpc_server *rpc, const ProtobufCServiceDescriptor *svc) {
    char path[256];
    int missing = 0;
    for (unsigned i = 0; i < svc->n_methods; i++) {
        snprintf(path, sizeof path, "/%s/%s", svc->name, svc->methods[i].name);
        int role = e2_rpc_server_method_role(rpc, path);
        if (role <= (int)E2_AUTH_ROLE_NONE || role > (int)E2_AUTH_ROLE_ADMIN) {
            fprintf(stderr, "%s: %s: add a row with the role it needs\n", path,
                    role < 0 ? "no row" : "row without a role");
            missing++;
        }
    }
    return missing;
}

/* The role e2d's table gives a method ("" service prefix added). */
static int role_of(e2_rpc_server *rpc, const char *path) {
    return e2_rpc_server_method_role(rpc, path);
}

static void every_method_has_a_row_with_a_role(void) {
    static const char *reads[] = { "GetJob",     "ListJobs",    "WatchJob",
                                   "StreamLogs", "ListWorkers", "GetMetrics" };
    static const char *writes[] = { "SubmitJob", "CancelJob" };
    e2d_server srv;
    char err[256], p[128];
    memset(&srv, 0, sizeof srv);
    srv.loop = uv_default_loop();
    CHECK((srv.rpc = e2_rpc_server_new(srv.loop, &srv)) != NULL);
    if (!srv.rpc) return;
    EXPECT(e2_api_register(&srv, err, sizeof err) == 0, "e2_api_register: %s", err);
    EXPECT(e2_wapi_register(&srv, err, sizeof err) == 0, "e2_wapi_register: %s", err);
    EXPECT(missing_roles(srv.rpc, &e2__v1__coordinator__descriptor) == 0,
           "e2.v1.Coordinator has methods without a role");
    EXPECT(missing_roles(srv.rpc, &e2__v1__worker_control__descriptor) == 0,
           "e2.v1.WorkerControl has methods without a role");
    /* The policy of auth.h, method by method. */
    for (size_t i = 0; i < sizeof reads / sizeof *reads; i++) {
        snprintf(p, sizeof p, "/e2.v1.Coordinator/%s", reads[i]);
        EXPECT(role_of(srv.rpc, p) == E2_AUTH_ROLE_VIEWER, "%s needs viewer", p);
    }
    for (size_t i = 0; i < sizeof writes / sizeof *writes; i++) {
        snprintf(p, sizeof p, "/e2.v1.Coordinator/%s", writes[i]);
        EXPECT(role_of(srv.rpc, p) == E2_AUTH_ROLE_SUBMITTER, "%s needs submitter", p);
    }
    for (unsigned i = 0; i < e2__v1__worker_control__descriptor.n_methods; i++) {
        snprintf(p, sizeof p, "/e2.v1.WorkerControl/%s",
                 e2__v1__worker_control__descriptor.methods[i].name);
        EXPECT(role_of(srv.rpc, p) == E2_AUTH_ROLE_WORKER, "%s needs worker", p);
    }
    EXPECT(role_of(srv.rpc, "/e2.v1.Coordinator/GetJobX") == -1, "no row for an unknown method");
    e2_rpc_server_free(srv.rpc);
}

static void dummy(e2_rpc_call *call, const ProtobufCMessage *req, void *data) {
    (void)call, (void)req, (void)data;
}

/* The check itself fails on a table that lacks a row (GetMetrics) and on
 * a row left without a role (ListWorkers). */
static void check_catches_a_missing_row(void) {
    const e2_rpc_method short_table[] = {
        { "SubmitJob", E2_RPC_UNARY, dummy, NULL, E2_AUTH_ROLE_SUBMITTER },
        { "GetJob", E2_RPC_UNARY, dummy, NULL, E2_AUTH_ROLE_VIEWER },
        { "ListJobs", E2_RPC_UNARY, dummy, NULL, E2_AUTH_ROLE_VIEWER },
        { "CancelJob", E2_RPC_UNARY, dummy, NULL, E2_AUTH_ROLE_SUBMITTER },
        { "WatchJob", E2_RPC_SERVER_STREAMING, dummy, NULL, E2_AUTH_ROLE_VIEWER },
        { "StreamLogs", E2_RPC_SERVER_STREAMING, dummy, NULL, E2_AUTH_ROLE_VIEWER },
        { "ListWorkers", E2_RPC_UNARY, dummy, NULL, 0 },
    };
    char err[256];
    e2_rpc_server *rpc = e2_rpc_server_new(uv_default_loop(), NULL);
    CHECK(rpc != NULL);
    if (!rpc) return;
    EXPECT(e2_rpc_server_add_service(rpc, &e2__v1__coordinator__descriptor, short_table,
                                     sizeof short_table / sizeof *short_table, err,
                                     sizeof err) == 0,
           "add_service: %s", err);
    EXPECT(missing_roles(rpc, &e2__v1__coordinator__descriptor) == 2,
           "the missing GetMetrics row and ListWorkers' missing role must both be reported");
    e2_rpc_server_free(rpc);
}

int main(int argc, char **argv) {
    static const expect_case cases[] = {
        { "every_method_has_a_row_with_a_role", every_method_has_a_row_with_a_role },
        { "check_catches_a_missing_row", check_catches_a_missing_row },
    };
    return expect_main("test_daemon_methods", cases, sizeof cases / sizeof *cases, argc, argv);
}
