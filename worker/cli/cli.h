/* cli.h -- the e2worker subcommands (one file each) and what they share.
 * Each returns the process exit status; errors are printed by main as one
 * line "e2worker: <message>". */
#ifndef E2_WORKER_CLI_H
#define E2_WORKER_CLI_H

#include <stddef.h>

#define CLI_ERRLEN 1024

int cli_run(int argc, char **argv, char *err, size_t errlen);
int cli_inspect(int argc, char **argv, char *err, size_t errlen);
int cli_export(int argc, char **argv, char *err, size_t errlen);
int cli_prep(int argc, char **argv, char *err, size_t errlen);

/* Parses a whole decimal/real argument of option opt; -1 with err set. */
int cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out,
                   char *err, size_t errlen);
int cli_parse_double(const char *opt, const char *s, double *out, char *err,
                     size_t errlen);

#endif
