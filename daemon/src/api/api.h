/* api.h -- the API layer (api/): the RPC services and what serves them.
 * api.c (e2.v1.Coordinator, prefix api_), wapi.c (e2.v1.WorkerControl,
 * wapi_), logs.c (StreamLogs, logs_), batch.c (group commit of SubmitJob, Heartbeat, ReportDone,
 * e2d_batch_); authz.h and http.h are the other two files of the layer.
 * It calls down into sched/, jobs/, store/ and base/; only main.c calls it. */
#ifndef E2D_API_H
#define E2D_API_H

#include "e2d.h"

/* ---- batch.c ---- */
/* Opens the group-commit transaction (if not open). */
int e2d_batch_join(e2d_server *srv, char *err, size_t errlen);
/* Replies after the batch commits (at once when none is open); takes the
 * message. */
void e2d_batch_reply(e2d_server *srv, e2_rpc_call *call, ProtobufCMessage *msg);
/* Commits the open batch and sends its replies; every entry point other
 * than SubmitJob, Heartbeat and ReportDone calls it first. */
void e2d_batch_flush(e2d_server *srv);
void e2d_batch_start(e2d_server *srv);

/* ---- api.c / wapi.c / logs.c ---- */
int e2_api_register(e2d_server *srv, char *err, size_t errlen);
/* GetJob, ListJobs and GetMetrics without an e2_rpc_call (the HTTP API of
 * http.c answers from the same code): E2_RPC_OK with the reply in *out (free
 * with protobuf_c_message_free_unpacked), or an error status with one line
 * in msg. */
e2_rpc_status e2_api_build_get_job(e2d_server *srv, const E2__V1__GetJobRequest *req,
                                   E2__V1__GetJobResponse **out, char *msg, size_t msglen);
e2_rpc_status e2_api_build_list_jobs(e2d_server *srv, const E2__V1__ListJobsRequest *req,
                                     E2__V1__ListJobsResponse **out, char *msg, size_t msglen);
e2_rpc_status e2_api_build_metrics(e2d_server *srv, const E2__V1__GetMetricsRequest *req,
                                   E2__V1__GetMetricsResponse **out, char *msg, size_t msglen);
int e2_wapi_register(e2d_server *srv, char *err, size_t errlen);
/* Answers rendezvous waiters of (job, attempt, key) after a put, and
 * expired ones. */
void e2_wapi_rdv_wake(e2d_server *srv, const char *job, int attempt, const char *key);
void e2_wapi_cron(e2d_server *srv);
void e2_logs_start(e2d_server *srv, e2_rpc_call *call, const E2__V1__StreamLogsRequest *req);
void e2_logs_cron(e2d_server *srv);

#endif
