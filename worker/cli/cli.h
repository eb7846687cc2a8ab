/* cli.h -- the e2worker subcommands (one file each) and what they share.
 * Each returns the process exit status; errors are printed by main as one
 * line "e2worker: <message>". */
#ifndef E2_WORKER_CLI_H
#define E2_WORKER_CLI_H

#include <stddef.h>

#include "e2/v1/job.pb-c.h"

#define CLI_ERRLEN 1024

int cli_run(int argc, char **argv, char *err, size_t errlen);
int cli_inspect(int argc, char **argv, char *err, size_t errlen);
int cli_export(int argc, char **argv, char *err, size_t errlen);
int cli_prep(int argc, char **argv, char *err, size_t errlen);
int cli_eval(int argc, char **argv, char *err, size_t errlen);

/* Loads SPEC.json and resolves it as the agent does (worker/job's
 * e2w_spec_resolve: the --set overrides, model.hf_dir pointed at model_dir
 * when not NULL, the model's config.json defaults, the spec defaults,
 * validation and the file checks); output_dir defaults to e2-run-NAME.
 * *out is the caller's (e2_spec_free). */
int cli_resolve_spec(const char *path, char **sets, int n_sets, const char *model_dir,
                     E2__V1__JobSpec **out, char *err, size_t errlen);

/* Parses a whole decimal/real argument of option opt; E2_ERR with err set. */
int cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out, char *err,
                   size_t errlen);
int cli_parse_double(const char *opt, const char *s, double *out, char *err, size_t errlen);

#endif
