/* test_job.c -- worker/job: the spec resolve chain (defaults filled, the
 * hf_dir model's config.json before the defaults, a bad field as one line
 * naming it, the agent's data roots first) and the choice of the
 * checkpoint a job resumes from. One case per ctest (job_<case>). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "../expect.h"
#include "job.h"
#include "spec.h"

static char dir[] = "/tmp/e2-job-test-XXXXXX";
static char shard[256], hf[256], err[E2_ERRLEN];

/* A temp folder with a (readable) shard file and an hf model folder whose
 * config.json has max_position_embeddings 512 and vocab_size 300. */
static void setup(void) {
    char path[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(shard, sizeof shard, "%s/train_0.bin", dir);
    snprintf(hf, sizeof hf, "%s/model", dir);
    CHECK(e2_write_file_atomic(shard, "x", 1, err, sizeof err) == 0);
    CHECK(e2_mkdir_p(hf, 0755, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/config.json", hf);
    static const char cfg[] =
        "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2,"
        " \"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 300,"
        " \"max_position_embeddings\": 512}";
    CHECK(e2_write_file_atomic(path, cfg, strlen(cfg), err, sizeof err) == 0);
}

static void teardown(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", hf);
    unlink(path);
    rmdir(hf);
    unlink(shard);
    rmdir(dir);
}

/* A spec with the given model section and the temp shard. */
static E2__V1__JobSpec *spec_with(const char *model) {
    char text[1024];
    snprintf(text, sizeof text,
             "{\"name\": \"j\", \"model\": %s, \"data\": {\"train_shards\": [\"%s\"]}}", model,
             shard);
    E2__V1__JobSpec *s = e2_spec_parse(text, strlen(text), err, sizeof err);
    EXPECT(s != NULL, "parse: %s", err);
    return s;
}

static const char *inline_model =
    "{\"config\": {\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"intermediate_size\": 128, \"vocab_size\": 257, \"max_position_embeddings\": 256}}";

/* Every unset knob gets its documented default; the inline config is the
 * architecture handed back. */
static void test_resolve_fills_defaults(void) {
    setup();
    E2__V1__JobSpec *s = spec_with(inline_model);
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    int rc = s ? e2w_spec_resolve(s, NULL, &cfg, err, sizeof err) : -1;
    EXPECT(rc == 0, "resolve: %s", err);
    if (rc == 0) {
        CHECK(!strcmp(s->device, "cpu") && s->num_workers == 1 && s->max_restarts == 3);
        CHECK(s->train && s->train->has_lr && s->train->has_steps && s->train->micro_batch >= 1);
        CHECK(!strcmp(s->augment->method, "e2") && s->augment->original_window == 256);
        CHECK(s->eval->n_windows == 1 && s->eval->windows[0] == 256);
        CHECK(cfg.vocab_size == 257 && cfg.max_position_embeddings == 256);
    }
    e2_spec_free(s);
    teardown();
}

/* An hf_dir model: config.json's window fills the model-dependent
 * defaults before the general ones, a value the user set stays, and the
 * spec keeps hf_dir without model.config (so it validates again). */
static void test_resolve_hf_config_first(void) {
    setup();
    char model[512];
    snprintf(model, sizeof model, "{\"hf_dir\": \"%s\"}", hf);
    E2__V1__JobSpec *s = spec_with(model);
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    int rc = s ? e2w_spec_resolve(s, NULL, &cfg, err, sizeof err) : -1;
    EXPECT(rc == 0, "resolve: %s", err);
    if (rc == 0) {
        CHECK(s->augment->original_window == 512);
        CHECK(s->eval->n_windows == 1 && s->eval->windows[0] == 512);
        CHECK(s->model->config == NULL && !strcmp(s->model->hf_dir, hf));
        CHECK(cfg.vocab_size == 300 && cfg.max_position_embeddings == 512);
        CHECK(e2_spec_validate(s, err, sizeof err) == 0);
    }
    e2_spec_free(s);
    char *sets[] = { "augment.original_window=128", "eval.windows=[256]" };
    e2w_resolve_opts o = { .sets = sets, .n_sets = 2 };
    s = spec_with(model);
    rc = s ? e2w_spec_resolve(s, &o, NULL, err, sizeof err) : -1;
    EXPECT(rc == 0, "resolve with --set: %s", err);
    if (rc == 0) {
        CHECK(s->augment->original_window == 128);
        CHECK(s->eval->n_windows == 1 && s->eval->windows[0] == 256 && s->eval->scales[0] == 2.0);
    }
    e2_spec_free(s);
    /* model_dir (`e2worker eval --model`) replaces an inline config. */
    e2w_resolve_opts m = { .model_dir = hf };
    s = spec_with(inline_model);
    rc = s ? e2w_spec_resolve(s, &m, &cfg, err, sizeof err) : -1;
    EXPECT(rc == 0, "resolve with model_dir: %s", err);
    if (rc == 0) CHECK(s->model->config == NULL && cfg.vocab_size == 300);
    e2_spec_free(s);
    teardown();
}

/* A bad value is one line naming the field; so is a shard that is gone
 * and a bad --set path. */
static void test_resolve_bad_field_one_line(void) {
    setup();
    char *bad_lr[] = { "train.lr=-1" };
    e2w_resolve_opts o = { .sets = bad_lr, .n_sets = 1 };
    E2__V1__JobSpec *s = spec_with(inline_model);
    err[0] = 0;
    CHECK(s && e2w_spec_resolve(s, &o, NULL, err, sizeof err) < 0);
    EXPECT(strstr(err, "spec.train.lr") && !strchr(err, '\n'), "got: %s", err);
    e2_spec_free(s);
    char *bad_path[] = { "train.no_such=1" };
    o.sets = bad_path;
    s = spec_with(inline_model);
    err[0] = 0;
    CHECK(s && e2w_spec_resolve(s, &o, NULL, err, sizeof err) < 0);
    EXPECT(strstr(err, "no_such") && !strchr(err, '\n'), "got: %s", err);
    e2_spec_free(s);
    s = spec_with(inline_model);
    unlink(shard);
    err[0] = 0;
    CHECK(s && e2w_spec_resolve(s, NULL, NULL, err, sizeof err) < 0);
    EXPECT(strstr(err, "spec.data.train_shards[0]") && !strchr(err, '\n'), "got: %s", err);
    e2_spec_free(s);
    teardown();
}

/* The agent's data roots are checked before anything is read: a shard
 * outside them fails naming the field, though the file exists. */
static void test_resolve_roots_first(void) {
    setup();
    e2w_resolve_opts o = { .data_roots = "/nonexistent-root" };
    E2__V1__JobSpec *s = spec_with(inline_model);
    err[0] = 0;
    CHECK(s && e2w_spec_resolve(s, &o, NULL, err, sizeof err) < 0);
    EXPECT(strstr(err, "spec.data.train_shards[0]") && strstr(err, "data roots"), "got: %s", err);
    e2_spec_free(s);
    o.data_roots = dir;
    s = spec_with(inline_model);
    EXPECT(s && e2w_spec_resolve(s, &o, NULL, err, sizeof err) == 0, "inside the root: %s", err);
    e2_spec_free(s);
    teardown();
}

/* The job's own newest checkpoint wins; else spec.resume_from; else a
 * fresh start. An empty string is no checkpoint. */
static void test_resume_choice(void) {
    E2__V1__JobSpec s = E2__V1__JOB_SPEC__INIT;
    int own = -1;
    CHECK(e2w_job_resume_from(NULL, &s, &own) == NULL && own == 0);
    CHECK(e2w_job_resume_from("", &s, &own) == NULL && own == 0);
    s.resume_from = "";
    CHECK(e2w_job_resume_from(NULL, &s, &own) == NULL && own == 0);
    s.resume_from = "/other/checkpoints/step_2";
    const char *from = e2w_job_resume_from("", &s, &own);
    CHECK(from && !strcmp(from, "/other/checkpoints/step_2") && own == 0);
    from = e2w_job_resume_from("/mine/checkpoints/step_4", &s, &own);
    CHECK(from && !strcmp(from, "/mine/checkpoints/step_4") && own == 1);
    CHECK(e2w_job_resume_from("/mine/checkpoints/step_4", &s, NULL) != NULL);
}

/* The trainer's failure codes map to the class the agent reports: data and
 * size are the user's, a diverged run is its own class, the rest the
 * machinery's. */
static void test_fail_class(void) {
    CHECK(e2w_job_fail_of(E2W_TRAIN_EDATA) == E2W_JOB_FAIL_USER);
    CHECK(e2w_job_fail_of(E2W_TRAIN_ENOMEM) == E2W_JOB_FAIL_USER);
    CHECK(e2w_job_fail_of(E2W_TRAIN_ENAN) == E2W_JOB_FAIL_NAN);
    CHECK(e2w_job_fail_of(-1) == E2W_JOB_FAIL_INFRA);
    CHECK(e2w_job_fail_of(-5) == E2W_JOB_FAIL_INFRA);
    CHECK(e2w_job_fail_of(0) == E2W_JOB_FAIL_NONE);
}

int main(int argc, char **argv) {
    static const expect_case cases[] = {
        { "resolve_fills_defaults", test_resolve_fills_defaults },
        { "resolve_hf_config_first", test_resolve_hf_config_first },
        { "resolve_bad_field_one_line", test_resolve_bad_field_one_line },
        { "resolve_roots_first", test_resolve_roots_first },
        { "resume_choice", test_resume_choice },
        { "fail_class", test_fail_class },
    };
    return expect_main("test_job", cases, sizeof cases / sizeof cases[0], argc, argv);
}
