/* jobdir.h -- the files of a job (prefix jobdir_), under
 * <state-dir>/jobs/<id>/:
 *
 *   spec.json                 the spec as submitted
 *   attempt-<n>/rank-<r>.log  trainer lines each rank sent in heartbeats
 *   checkpoints/step_N.tmp/   written by the ranks of an attempt
 *   checkpoints/step_N/       committed: manifest.json + the ranks' files
 *   metrics.jsonl             one JSON object per reported step (rank 0)
 *   eval.json                 rank 0's evaluation results
 *
 * Paths are built into caller buffers of E2_JOBDIR_PATHLEN bytes. */
#ifndef E2D_JOBDIR_H
#define E2D_JOBDIR_H

#include <stddef.h>
#include <stdint.h>

#define E2_JOBDIR_PATHLEN 1024

/* A checkpoint file a rank reported (for the size check and manifest). */
typedef struct e2_jobdir_file {
    int rank;
    const char *name;
    uint64_t size;
    const char *sha256;
} e2_jobdir_file;

void e2_jobdir_path(const char *state_dir, const char *id, char *out);
/* Creates the job directory with checkpoints/ and writes spec.json. */
int e2_jobdir_create(const char *state_dir, const char *id, const char *spec_json, char *err,
                     size_t errlen);
/* Creates attempt-<n>/ and removes stale checkpoints/ *.tmp folders. */
int e2_jobdir_attempt_start(const char *state_dir, const char *id, int attempt, char *err,
                            size_t errlen);
void e2_jobdir_log_path(const char *state_dir, const char *id, int attempt, int rank, char *out);
/* Appends lines (each gets a '\n') to attempt-<n>/rank-<r>.log. */
int e2_jobdir_log_append(const char *state_dir, const char *id, int attempt, int rank,
                         char *const *lines, size_t n, char *err, size_t errlen);
/* The last (at most max) lines of a rank's log, malloc'd into lines[];
 * returns their count. */
int e2_jobdir_log_tail(const char *state_dir, const char *id, int attempt, int rank, char **lines,
                       int max);
/* Appends one line of JSON text to metrics.jsonl. */
int e2_jobdir_metrics_append(const char *state_dir, const char *id, const char *json_line,
                             char *err, size_t errlen);
int e2_jobdir_write_eval(const char *state_dir, const char *id, const char *json, char *err,
                         size_t errlen);
/* Commits checkpoints/step_N.tmp: checks every reported file's size,
 * writes manifest.json (fsynced), renames the folder to step_N (replacing
 * an older step_N), fsyncs checkpoints/. The committed path goes to out. */
int e2_jobdir_ckpt_commit(const char *state_dir, const char *id, int64_t step,
                          const char *manifest_json, const e2_jobdir_file *files, size_t nfiles,
                          char *out, char *err, size_t errlen);
/* Removes a committed checkpoint folder (retention). */
int e2_jobdir_ckpt_remove(const char *path, char *err, size_t errlen);

#endif
