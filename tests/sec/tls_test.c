/* tls_test.c: e2_rpc's TLS listeners and auth hook over real sockets, with
 * certificates made by gen_certs.sh (openssl) in a temp dir at start.
 * The server serves e2.v1.Coordinator GetJob on its own loop thread and
 * answers job.id = principal name, job.reason = principal role ("-" when
 * the call has no principal). The auth hook used by the auth_* cases
 * knows one bearer token, "good-token", as ("alice", "viewer"), and lets
 * a viewer call GetJob only.
 * Usage: tls_test DIR_OF_gen_certs.sh [case]; no case runs every case. */
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2/v1/coordinator.pb-c.h"

#include "../expect.h"

static char pki[128]; /* temp dir with the certificates */

static char *pem(const char *name) {
    static char paths[8][192];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", pki, name);
    return p;
}

/* ------------------------------------------------------------ test server */

typedef struct {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    e2_rpc_server *srv;
    int port;
    char addr[64];
} harness;

static void handle_get_job(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)request;
    (void)data;
    const e2_rpc_principal *p = e2_rpc_call_principal(call);
    E2__V1__Job job = E2__V1__JOB__INIT;
    E2__V1__GetJobResponse resp = E2__V1__GET_JOB_RESPONSE__INIT;
    job.id = (char *)(p != NULL ? p->name : "-");
    job.reason = (char *)(p != NULL ? p->role : "-");
    resp.job = &job;
    e2_rpc_call_reply(call, &resp.base);
}

static e2_rpc_status test_auth(const e2_rpc_call *call, e2_rpc_principal *principal, char *message,
                               size_t message_len, void *data) {
    (void)data;
    const char *h = e2_rpc_call_metadata(call, "authorization");
    if (h == NULL || strcmp(h, "Bearer good-token") != 0) {
        snprintf(message, message_len, "no valid bearer token");
        return E2_RPC_UNAUTHENTICATED;
    }
    if (strcmp(e2_rpc_call_method(call), "/e2.v1.Coordinator/GetJob") != 0) {
        snprintf(message, message_len, "alice may not call %s", e2_rpc_call_method(call));
        return E2_RPC_PERMISSION_DENIED;
    }
    snprintf(principal->name, sizeof principal->name, "alice");
    snprintf(principal->role, sizeof principal->role, "viewer");
    return E2_RPC_OK;
}

static void on_shut_down(e2_rpc_server *srv) {
    harness *h = e2_rpc_server_data(srv);
    uv_close((uv_handle_t *)&h->stop, NULL);
}

static void on_stop(uv_async_t *a) {
    harness *h = a->data;
    e2_rpc_server_shutdown(h->srv, 100, on_shut_down);
}

static void loop_thread(void *arg) {
    harness *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

static const e2_rpc_method methods[] = {
    { "GetJob", E2_RPC_UNARY, handle_get_job, NULL, 0 },
};

/* A server on 127.0.0.1:0 with `tls` (NULL: plaintext) and, when `auth`,
 * the test auth hook. */
static harness *harness_start(const e2_rpc_tls *tls, int auth) {
    harness *h = calloc(1, sizeof *h);
    char err[256];
    uv_loop_init(&h->loop);
    h->srv = e2_rpc_server_new(&h->loop, h);
    if (auth) CHECK(e2_rpc_server_set_auth(h->srv, test_auth, NULL) == 0);
    if (e2_rpc_server_add_service(h->srv, &e2__v1__coordinator__descriptor, methods, 1, err,
                                  sizeof err) != 0 ||
        e2_rpc_server_listen(h->srv, "127.0.0.1:0", tls, &h->port, err, sizeof err) != 0) {
        fprintf(stderr, "server setup: %s\n", err);
        exit(1);
    }
    snprintf(h->addr, sizeof h->addr, "127.0.0.1:%d", h->port);
    uv_async_init(&h->loop, &h->stop, on_stop);
    h->stop.data = h;
    if (e2_rpc_server_start(h->srv, err, sizeof err) != 0) {
        fprintf(stderr, "start: %s\n", err);
        exit(1);
    }
    CHECK(e2_rpc_server_set_auth(h->srv, test_auth, NULL) == E2_RPC_ESTATE);
    uv_thread_create(&h->thread, loop_thread, h);
    return h;
}

static void harness_stop(harness *h) {
    uv_async_send(&h->stop);
    uv_thread_join(&h->thread);
    e2_rpc_server_free(h->srv);
    CHECK(uv_loop_close(&h->loop) == 0);
    free(h);
}

/* GetJob through c; the status, with the answer's id and reason copied. */
static int get_job(e2_rpc_client *c, char *id, char *reason, char *msg) {
    E2__V1__GetJobRequest req = E2__V1__GET_JOB_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    req.id = "x";
    id[0] = reason[0] = '\0';
    int code = e2_rpc_client_call(c, "/e2.v1.Coordinator/GetJob", &req.base,
                                  &e2__v1__get_job_response__descriptor, &resp, 5000, msg, 256);
    if (resp != NULL) {
        E2__V1__GetJobResponse *r = (E2__V1__GetJobResponse *)resp;
        snprintf(id, 64, "%s", r->job && r->job->id ? r->job->id : "");
        snprintf(reason, 64, "%s", r->job && r->job->reason ? r->job->reason : "");
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    return code;
}

static int call_with(const char *addr, const e2_rpc_client_tls *tls, const char *authorization,
                     char *id, char *reason) {
    char err[256], msg[256];
    e2_rpc_client *c = e2_rpc_client_new_tls(addr, tls, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "client: %s\n", err);
        return -1;
    }
    if (authorization != NULL) e2_rpc_client_set_metadata(c, "authorization", authorization);
    int code = get_job(c, id, reason, msg);
    e2_rpc_client_free(c);
    return code;
}

/* ------------------------------------------------------------------ cases */

static void test_tls_roundtrip(void) {
    e2_rpc_tls tls = { pem("server.pem"), pem("server.key"), NULL };
    harness *h = harness_start(&tls, 0);
    e2_rpc_client_tls ct = { pem("ca.pem"), NULL, NULL, NULL };
    char id[64], reason[64];
    CHECK(call_with(h->addr, &ct, NULL, id, reason) == E2_RPC_OK);
    CHECK(strcmp(id, "-") == 0); /* no auth hook: no principal */
    char loc[64];
    snprintf(loc, sizeof loc, "localhost:%d", h->port);
    CHECK(call_with(loc, &ct, NULL, id, reason) == E2_RPC_OK);
    harness_stop(h);
}

static void test_plaintext_client_vs_tls_port_fails(void) {
    e2_rpc_tls tls = { pem("server.pem"), pem("server.key"), NULL };
    harness *h = harness_start(&tls, 0);
    char id[64], reason[64];
    CHECK(call_with(h->addr, NULL, NULL, id, reason) == E2_RPC_UNAVAILABLE);
    CHECK(id[0] == '\0');
    harness_stop(h);
}

static void test_tls_client_vs_plaintext_port_fails(void) {
    harness *h = harness_start(NULL, 0);
    e2_rpc_client_tls ct = { pem("ca.pem"), NULL, NULL, NULL };
    char id[64], reason[64];
    CHECK(call_with(h->addr, &ct, NULL, id, reason) == E2_RPC_UNAVAILABLE);
    harness_stop(h);
}

static void test_untrusted_server_cert_fails(void) {
    e2_rpc_tls tls = { pem("server.pem"), pem("server.key"), NULL };
    harness *h = harness_start(&tls, 0);
    e2_rpc_client_tls ct = { pem("rogue-ca.pem"), NULL, NULL, NULL };
    char id[64], reason[64];
    CHECK(call_with(h->addr, &ct, NULL, id, reason) == E2_RPC_UNAVAILABLE);
    /* the right CA, but a name the certificate does not carry */
    e2_rpc_client_tls wrong_name = { pem("ca.pem"), NULL, NULL, "e2d.example" };
    CHECK(call_with(h->addr, &wrong_name, NULL, id, reason) == E2_RPC_UNAVAILABLE);
    harness_stop(h);
}

static void test_mutual_tls(void) {
    e2_rpc_tls tls = { pem("server.pem"), pem("server.key"), pem("ca.pem") };
    harness *h = harness_start(&tls, 0);
    char id[64], reason[64];
    e2_rpc_client_tls with_cert = { pem("ca.pem"), pem("client.pem"), pem("client.key"), NULL };
    CHECK(call_with(h->addr, &with_cert, NULL, id, reason) == E2_RPC_OK);
    e2_rpc_client_tls no_cert = { pem("ca.pem"), NULL, NULL, NULL };
    CHECK(call_with(h->addr, &no_cert, NULL, id, reason) == E2_RPC_UNAVAILABLE);
    e2_rpc_client_tls rogue = { pem("ca.pem"), pem("rogue.pem"), pem("rogue.key"), NULL };
    CHECK(call_with(h->addr, &rogue, NULL, id, reason) == E2_RPC_UNAVAILABLE);
    harness_stop(h);
}

static void test_auth_hook(void) {
    e2_rpc_tls tls = { pem("server.pem"), pem("server.key"), NULL };
    harness *h = harness_start(&tls, 1);
    e2_rpc_client_tls ct = { pem("ca.pem"), NULL, NULL, NULL };
    char id[64], reason[64];
    CHECK(call_with(h->addr, &ct, "Bearer good-token", id, reason) == E2_RPC_OK);
    CHECK(strcmp(id, "alice") == 0 && strcmp(reason, "viewer") == 0);
    CHECK(call_with(h->addr, &ct, NULL, id, reason) == E2_RPC_UNAUTHENTICATED);
    CHECK(call_with(h->addr, &ct, "Bearer bad-token", id, reason) == E2_RPC_UNAUTHENTICATED);

    /* refused before the body is looked at: unknown methods too */
    char err[256], msg[256];
    e2_rpc_client *c = e2_rpc_client_new_tls(h->addr, &ct, err, sizeof err);
    E2__V1__GetJobRequest req = E2__V1__GET_JOB_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    CHECK(e2_rpc_client_call(c, "/e2.v1.Coordinator/SubmitJob", &req.base,
                             &e2__v1__get_job_response__descriptor, &resp, 5000, msg,
                             sizeof msg) == E2_RPC_UNAUTHENTICATED);
    e2_rpc_client_set_metadata(c, "authorization", "Bearer good-token");
    CHECK(e2_rpc_client_call(c, "/e2.v1.Coordinator/SubmitJob", &req.base,
                             &e2__v1__get_job_response__descriptor, &resp, 5000, msg,
                             sizeof msg) == E2_RPC_PERMISSION_DENIED);
    CHECK(strstr(msg, "alice may not call /e2.v1.Coordinator/SubmitJob") != NULL);
    CHECK(resp == NULL);
    e2_rpc_client_free(c);
    harness_stop(h);
}

static void test_bad_tls_files_rejected(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    e2_rpc_server *s = e2_rpc_server_new(&loop, NULL);
    char err[256];
    e2_rpc_tls missing = { pem("nope.pem"), pem("server.key"), NULL };
    CHECK(e2_rpc_server_listen(s, "127.0.0.1:0", &missing, NULL, err, sizeof err) == E2_RPC_EINVAL);
    CHECK(strstr(err, "nope.pem") != NULL);
    e2_rpc_tls not_pem = { pem("server.pem"), pem("ca.srl"), NULL };
    CHECK(e2_rpc_server_listen(s, "127.0.0.1:0", &not_pem, NULL, err, sizeof err) == E2_RPC_EINVAL);
    CHECK(strstr(err, "not PEM") != NULL);
    e2_rpc_server_free(s);
    uv_loop_close(&loop);

    e2_rpc_client_tls half = { pem("ca.pem"), pem("client.pem"), NULL, NULL };
    CHECK(e2_rpc_client_new_tls("127.0.0.1:1", &half, err, sizeof err) == NULL);
    CHECK(strstr(err, "both") != NULL);
    e2_rpc_client_tls no_ca = { pem("missing-ca.pem"), NULL, NULL, NULL };
    CHECK(e2_rpc_client_new_tls("127.0.0.1:1", &no_ca, err, sizeof err) == NULL);
    CHECK(strstr(err, "missing-ca.pem") != NULL);
}

/* A private key other users may read is refused before it is read, by the
 * server and by a mutual-TLS client, with one line naming the file and the
 * mode (the token file rule); 0640 is fine. */
static void test_tls_key_readable_by_others_refused(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    e2_rpc_server *s = e2_rpc_server_new(&loop, NULL);
    char err[512];
    CHECK(chmod(pem("server.key"), 0644) == 0);
    e2_rpc_tls open_key = { pem("server.pem"), pem("server.key"), NULL };
    CHECK(e2_rpc_server_listen(s, "127.0.0.1:0", &open_key, NULL, err, sizeof err) ==
          E2_RPC_EINVAL);
    CHECK(strstr(err, "server.key is accessible by other users (mode 644)") != NULL);
    CHECK(strstr(err, "chmod 600") != NULL);
    e2_rpc_server_free(s);
    uv_loop_close(&loop);

    CHECK(chmod(pem("client.key"), 0604) == 0);
    e2_rpc_client_tls client = { pem("ca.pem"), pem("client.pem"), pem("client.key"), NULL };
    CHECK(e2_rpc_client_new_tls("127.0.0.1:1", &client, err, sizeof err) == NULL);
    CHECK(strstr(err, "client.key is accessible by other users") != NULL);
    CHECK(chmod(pem("client.key"), 0640) == 0);
    e2_rpc_client *c = e2_rpc_client_new_tls("127.0.0.1:1", &client, err, sizeof err);
    CHECK(c != NULL);
    if (c != NULL) e2_rpc_client_free(c);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    { "tls_roundtrip", test_tls_roundtrip },
    { "plaintext_client_vs_tls_port_fails", test_plaintext_client_vs_tls_port_fails },
    { "tls_client_vs_plaintext_port_fails", test_tls_client_vs_plaintext_port_fails },
    { "untrusted_server_cert_fails", test_untrusted_server_cert_fails },
    { "mutual_tls", test_mutual_tls },
    { "auth_hook", test_auth_hook },
    { "bad_tls_files_rejected", test_bad_tls_files_rejected },
    { "tls_key_readable_by_others_refused", test_tls_key_readable_by_others_refused },
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tls_test GEN_CERTS_DIR [case]\n");
        return 2;
    }
    snprintf(pki, sizeof pki, "/tmp/e2-sec-pki-XXXXXX");
    if (mkdtemp(pki) == NULL) return 1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh %s/gen_certs.sh %s", argv[1], pki);
    if (system(cmd) != 0) {
        fprintf(stderr, "gen_certs.sh failed (is openssl installed?)\n");
        return 1;
    }
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 2 && strcmp(argv[2], cases[i].name) != 0) continue;
        fprintf(stderr, "== %s\n", cases[i].name);
        cases[i].fn();
        ran++;
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", pki);
    if (system(cmd) != 0) failures++;
    if (ran == 0) {
        fprintf(stderr, "no case named %s\n", argv[2]);
        return 2;
    }
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
