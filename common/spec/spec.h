/* spec: the job spec (proto/e2/v1/job.proto) as e2 programs handle it:
 * load its JSON form, apply `--set path=value` overrides, fill every
 * documented default, and validate every field with one clear line.
 *
 * The usual sequence (e2worker run, e2ctl submit, e2d on submit):
 *
 *     E2__V1__JobSpec *s = e2_spec_load("job.json", err, sizeof err);
 *     e2_spec_set_arg(s, "train.lr=3e-4", err, sizeof err);   // each --set
 *     e2_spec_apply_defaults(s, err, sizeof err);
 *     e2_spec_validate(s, err, sizeof err);                    // pure
 *     e2_spec_check_files(s, err, sizeof err);                 // touches disk
 *
 * Defaults are the ones job.proto's comments document, with two
 * refinements: train.micro_batch defaults to the largest divisor of the
 * per-rank batch (global_batch / num_workers) that is <= 4 (equal to the
 * documented min(global_batch, 4) whenever that is valid), and eval.scales
 * defaults to max(1, L'/L). Defaults that need the model (original_window
 * from max_position_embeddings, eval.windows = {L}, eval.scales) are applied
 * by e2_spec_apply_model_defaults, which e2_spec_apply_defaults calls itself
 * when the spec carries model.config; for an hf_dir model, call it once the
 * checkpoint's config.json is read. g_weights stays empty when unset (it
 * means uniform) and eval.stride stays unset (it means L'/2 per window:
 * e2_spec_eval_stride). Functions return 0 or E2_ERR (base.h's error convention)
 * and write one line into err; nothing is printed. */
#ifndef E2_SPEC_H
#define E2_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"

/* Limits the validator enforces (also the ranges in its messages). */
#define E2_SPEC_G_MAX_LIMIT 1024u
#define E2_SPEC_PASSKEY_BUCKETS_LIMIT \
    64u /* eval.passkey_depth_buckets: at most this, and at most passkey_trials */
#define E2_SPEC_NAME_MAX           64u
#define E2_SPEC_MAX_BYTES          65536u /* the whole spec, protobuf-encoded */
#define E2_SPEC_LABELS_MAX         64u    /* spec.labels entries */
#define E2_SPEC_LABEL_KEY_MAX      63u    /* bytes of a label key */
#define E2_SPEC_LABEL_VALUE_MAX    256u   /* bytes of a label value */
#define E2_SPEC_SHARD_PATTERNS_MAX 256u   /* spec.data.train_shards, and eval_shards */
#define E2_SPEC_FILLER_TOKENS_MAX  4096u  /* spec.eval.filler_tokens */
#define E2_SPEC_PROMPT_TOKENS_MAX \
    1024u                            /* spec.eval.prompt_prefix_tokens, and prompt_suffix_tokens */
#define E2_SPEC_EVAL_WINDOWS_MAX 64u /* spec.eval.windows */

/* Reads and parses a spec file; relative data shard paths and model.hf_dir
 * are resolved against the directory of `path`. */
E2__V1__JobSpec *e2_spec_load(const char *path, char *err, size_t errlen);

/* Parses spec JSON text (no path resolution). */
E2__V1__JobSpec *e2_spec_parse(const char *text, size_t len, char *err, size_t errlen);

/* Makes relative shard paths / patterns and model.hf_dir absolute against
 * base_dir. */
int e2_spec_resolve_paths(E2__V1__JobSpec *spec, const char *base_dir, char *err, size_t errlen);

void e2_spec_free(E2__V1__JobSpec *spec);

/* A heap copy (NULL when out of memory). */
E2__V1__JobSpec *e2_spec_copy(const E2__V1__JobSpec *spec);

/* Sets one field by dotted path, relative to the spec ("train.lr"; a
 * leading "spec." is accepted): see e2_pbjson_set for the value syntax. */
int e2_spec_set(E2__V1__JobSpec *spec, const char *path, const char *value, char *err,
                size_t errlen);

/* One `--set path=value` argument. */
int e2_spec_set_arg(E2__V1__JobSpec *spec, const char *arg, char *err, size_t errlen);

/* Fills every unset knob with its documented default. */
int e2_spec_apply_defaults(E2__V1__JobSpec *spec, char *err, size_t errlen);

/* Fills the model-dependent defaults from the model's architecture. */
int e2_spec_apply_model_defaults(E2__V1__JobSpec *spec, const E2__V1__LlamaConfig *cfg, char *err,
                                 size_t errlen);

/* Checks every field (defaults are applied to a copy first, so unset knobs
 * are checked at their default). Pure: no file or network access. Checks
 * that need L are skipped while it is unknown (hf_dir model before
 * e2_spec_apply_model_defaults). */
int e2_spec_validate(const E2__V1__JobSpec *spec, char *err, size_t errlen);

/* Checks one architecture; `path` names it in messages
 * ("spec.model.config", or a config.json path). */
int e2_spec_validate_config(const E2__V1__LlamaConfig *cfg, const char *path, char *err,
                            size_t errlen);

/* Checks that every data shard pattern matches readable files and that
 * model.hf_dir holds a config.json. */
int e2_spec_check_files(const E2__V1__JobSpec *spec, char *err, size_t errlen);

/* Data access. `data_roots` is a ':'-separated list of folders; every path
 * a spec names that is read (data.train_shards and data.eval_shards
 * patterns, model.hf_dir, resume_from) must be a normalized absolute path
 * under one of them, and output_dir under `export_root` when that is set.
 * NULL or "" disables that part (no roots: any path, today's behaviour).
 * deep = 0 (e2d at submit): the text, and the realpath of the part before
 * any glob character when it exists; deep = 1 (the worker, before opening):
 * also every file a pattern matches and every entry of hf_dir and
 * resume_from, each resolved with realpath (symlinks). The error names the
 * field and the roots, never what a link points to or a file holds. */
int e2_spec_check_roots(const E2__V1__JobSpec *spec, const char *data_roots,
                        const char *export_root, int deep, char *err, size_t errlen);

/* One file about to be opened: its realpath must be under one of the
 * roots (0 when it is, or when it does not exist or roots is empty). */
int e2_spec_check_path_root(const char *field, const char *path, const char *data_roots, char *err,
                            size_t errlen);

/* Perplexity stride for one eval window: eval.stride, or window / 2. */
uint32_t e2_spec_eval_stride(const E2__V1__JobSpec *spec, uint32_t window);

/* Spec -> malloc'd JSON text with original field names (indent 0: one
 * line). NULL when out of memory. */
char *e2_spec_to_json(const E2__V1__JobSpec *spec, int indent);

#endif
