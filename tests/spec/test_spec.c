/* Tests of the job spec: JSON form, overrides, defaults, validation and the
 * file checks. */
#include "check.h"
#include "pbjson.h"
#include "spec.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[1024];

/* A complete, valid spec in the camelCase spelling of some fields. */
static const char *good =
    "{\n"
    "  \"name\": \"tiny-e2.1\",\n"
    "  \"labels\": {\"team\": \"ctx\", \"run\": \"a/b\"},\n"
    "  \"device\": \"cpu\",\n"
    "  \"numWorkers\": 2,\n"
    "  \"priority\": -3,\n"
    "  \"model\": {\"config\": {\"hidden_size\": 64, \"numHiddenLayers\": 2, "
    "\"num_attention_heads\": 4,\n"
    "              \"num_key_value_heads\": 2, \"intermediate_size\": 128, \"vocab_size\": 257,\n"
    "              \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000, \"max_position_embeddings\": "
    "256,\n"
    "              \"tie_word_embeddings\": true},\n"
    "            \"init_seed\": \"42\"},\n"
    "  \"data\": {\"train_shards\": [\"/data/t_*.bin\"], \"evalShards\": [\"/data/v.bin\"]},\n"
    "  \"augment\": {\"method\": \"e2\", \"g_max\": 4, \"gWeights\": [1, 2, 3, 4], \"n_sink\": 4,\n"
    "              \"granularity\": \"per_step\", \"train_length\": 128},\n"
    "  \"train\": {\"steps\": 50, \"global_batch\": 8, \"micro_batch\": 2, \"lr\": 3e-4, "
    "\"min_lr\": 3e-5,\n"
    "            \"warmup_steps\": 5, \"schedule\": \"linear\", \"weight_decay\": 0.1, \"seed\": "
    "7,\n"
    "            \"recompute\": true, \"zero1\": true},\n"
    "  \"checkpoint\": {\"every\": 10, \"keep_last\": 3},\n"
    "  \"eval\": {\"windows\": [256, 1024], \"stride\": 128, \"passkey_trials\": 4},\n"
    "  \"log_every\": 5\n"
    "}\n";

static E2__V1__JobSpec *parse(const char *text) {
    err[0] = '\0';
    return e2_spec_parse(text, strlen(text), err, sizeof err);
}

static int case_round_trip(void) {
    E2__V1__JobSpec *s = parse(good);
    if (!s) fprintf(stderr, "%s\n", err);
    CHECK(s);
    CHECK(strcmp(s->name, "tiny-e2.1") == 0 && s->n_labels == 2);
    CHECK(s->num_workers == 2 && s->priority == -3);
    CHECK(s->model->init_seed == 42 && s->model->config->num_hidden_layers == 2);
    CHECK(s->model->config->tie_word_embeddings && s->model->config->rms_norm_eps == 1e-6);
    CHECK(s->data->n_eval_shards == 1 && s->augment->n_g_weights == 4 &&
          s->augment->g_weights[3] == 4);
    CHECK(s->train->lr == 3e-4 && s->train->recompute && s->train->zero1);
    char *t1 = e2_spec_to_json(s, 2);
    CHECK(t1);
    E2__V1__JobSpec *s2 = parse(t1);
    CHECK(s2);
    char *t2 = e2_spec_to_json(s2, 2);
    CHECK(strcmp(t1, t2) == 0);
    /* Original names on output; the input's fields are all there. */
    CHECK(strstr(t1, "\"num_workers\": 2") && strstr(t1, "\"g_weights\"") &&
          !strstr(t1, "numWorkers"));
    json_t *a = json_loads(t1, 0, NULL), *b = e2_pbjson_from_message(&s->base);
    CHECK(a && b && json_equal(a, b));
    CHECK(json_object_size(a) == 12);
    /* Unset knobs are not emitted before defaults. */
    CHECK(json_object_get(json_object_get(a, "train"), "beta1") == NULL);
    json_decref(a);
    json_decref(b);
    free(t1);
    free(t2);
    e2_spec_free(s);
    e2_spec_free(s2);
    return 0;
}

static int case_unknown_top(void) {
    CHECK(parse("{\"name\": \"x\", \"nmae\": \"y\"}") == NULL);
    CHECK_MSG(err, "spec.nmae: unknown field (did you mean name?)");
    CHECK(parse("{\"gpu_count\": 1}") == NULL);
    CHECK_MSG(err, "spec.gpu_count: unknown field");
    return 0;
}

static int case_unknown_nested(void) {
    CHECK(parse("{\"augment\": {\"gmax\": 3}}") == NULL);
    CHECK_MSG(err, "spec.augment.gmax: unknown field (did you mean g_max?)");
    CHECK(parse("{\"model\": {\"config\": {\"hiden_size\": 3}}}") == NULL);
    CHECK_MSG(err, "spec.model.config.hiden_size: unknown field (did you mean hidden_size?)");
    CHECK(parse("{\"train\": {\"learning_rate\": 3}}") == NULL);
    CHECK_MSG(err, "spec.train.learning_rate: unknown field");
    return 0;
}

static int case_wrong_types(void) {
    static const struct {
        const char *json, *want;
    } t[] = {
        { "{\"train\": {\"lr\": \"3e-4\"}}", "spec.train.lr: expected a number, got string" },
        { "{\"train\": {\"steps\": \"10\"}}",
          "spec.train.steps: expected a non-negative integer, got string" },
        { "{\"train\": {\"steps\": 2.5}}",
          "spec.train.steps: expected a non-negative integer, got 2.5" },
        { "{\"num_workers\": -1}", "spec.num_workers: -1 is negative" },
        { "{\"priority\": 3000000000}", "spec.priority: 3000000000 is out of range for int32" },
        { "{\"name\": 5}", "spec.name: expected a string, got number" },
        { "{\"labels\": [\"a\"]}", "spec.labels: expected an object (map), got array" },
        { "{\"labels\": {\"a\": 1}}", "spec.labels.a: expected a string, got number" },
        { "{\"data\": {\"train_shards\": \"a.bin\"}}",
          "spec.data.train_shards: expected an array, got string" },
        { "{\"data\": {\"train_shards\": [\"a\", 2]}}",
          "spec.data.train_shards[1]: expected a string, got number" },
        { "{\"train\": {\"recompute\": \"yes\"}}", "spec.train.recompute: expected true or false" },
        { "{\"model\": 3}", "spec.model: expected an object, got number" },
        { "{\"model\": {\"init_seed\": \"12x\"}}",
          "spec.model.init_seed: expected a non-negative integer or a decimal string" },
        { "{\"augment\": {\"g_weights\": [1, \"x\"]}}",
          "spec.augment.g_weights[1]: expected a number, got string" },
        { "{\"eval\": {\"filler_tokens\": [1, 2147483648]}}",
          "spec.eval.filler_tokens[1]: 2147483648 is out of range" },
        { "{\"log_every\": 1, \"logEvery\": 2}", "spec.log_every: set twice" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        E2__V1__JobSpec *s = parse(t[i].json);
        if (s) fprintf(stderr, "accepted: %s\n", t[i].json);
        CHECK(s == NULL);
        CHECK_MSG(err, t[i].want);
    }
    /* 64-bit fields take numbers or strings. */
    E2__V1__JobSpec *s =
        parse("{\"train\": {\"seed\": \"18446744073709551615\"}, \"model\": {\"init_seed\": 9}}");
    CHECK(s && s->train->seed == UINT64_MAX && s->model->init_seed == 9);
    e2_spec_free(s);
    return 0;
}

static int case_empty_body(void) {
    CHECK(parse("") == NULL);
    CHECK_MSG(err, "spec: empty document");
    CHECK(parse("  \n\t ") == NULL);
    CHECK_MSG(err, "spec: empty document");
    CHECK(parse("[]") == NULL);
    CHECK_MSG(err, "spec: expected an object, got array");
    CHECK(parse("null") == NULL);
    CHECK_MSG(err, "spec: invalid JSON");
    E2__V1__JobSpec *s = parse("{}");
    CHECK(s);
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.name is required");
    e2_spec_free(s);
    return 0;
}

static int case_malformed(void) {
    CHECK(parse("{\n  \"name\": \"x\",\n  \"device\" \"cpu\"\n}") == NULL);
    CHECK_MSG(err, "spec: invalid JSON at line 3, column ");
    CHECK(parse("{\"name\": \"x\",}") == NULL);
    CHECK_MSG(err, "line 1, column 14");
    CHECK(parse("{\"name\": \"x\"} trailing") == NULL);
    CHECK_MSG(err, "invalid JSON at line 1");
    return 0;
}

static int case_set_overrides(void) {
    E2__V1__JobSpec *s = parse(good);
    CHECK(s);
    CHECK(e2_spec_set_arg(s, "train.lr=3e-3", err, sizeof err) == 0);
    CHECK(e2_spec_set_arg(s, "spec.train.steps=7", err, sizeof err) == 0);
    CHECK(e2_spec_set_arg(s, "augment.gWeights=1,1,0,2.5", err, sizeof err) == 0);
    CHECK(e2_spec_set_arg(s, "labels.team=other", err, sizeof err) == 0);
    CHECK(e2_spec_set_arg(s, "labels.new=1", err, sizeof err) == 0);
    CHECK(e2_spec_set_arg(s, "train.recompute=false", err, sizeof err) == 0);
    CHECK(e2_spec_set_arg(s, "data.train_shards=/a.bin,/b.bin", err, sizeof err) == 0);
    CHECK(e2_spec_set_arg(s, "eval.windows=128,512", err, sizeof err) == 0);
    CHECK(e2_spec_set_arg(s, "name=a=b", err, sizeof err) == 0);
    CHECK(e2_spec_set(s, "model.init_seed", "18446744073709551615", err, sizeof err) == 0);
    CHECK(s->train->lr == 3e-3 && s->train->steps == 7 && !s->train->recompute);
    CHECK(s->augment->n_g_weights == 4 && s->augment->g_weights[2] == 0 &&
          s->augment->g_weights[3] == 2.5);
    CHECK(s->n_labels == 3 && s->data->n_train_shards == 2 &&
          strcmp(s->data->train_shards[1], "/b.bin") == 0);
    CHECK(s->eval->n_windows == 2 && s->eval->windows[1] == 512 && strcmp(s->name, "a=b") == 0);
    CHECK(s->model->init_seed == UINT64_MAX);
    int team = 0;
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->labels[i]->key, "team") == 0)
            team = strcmp(s->labels[i]->value, "other") == 0;
    CHECK(team);
    /* Sub-messages are created on the way. */
    E2__V1__JobSpec *e = parse("{}");
    CHECK(e2_spec_set_arg(e, "model.config.hidden_size=64", err, sizeof err) == 0);
    CHECK(e->model && e->model->config && e->model->config->has_hidden_size &&
          e->model->config->hidden_size == 64);
    e2_spec_free(e);
    CHECK(e2_spec_set_arg(s, "train.lrr=1", err, sizeof err) != 0);
    CHECK_MSG(err, "spec.train.lrr: unknown field (did you mean lr?)");
    CHECK(e2_spec_set_arg(s, "train.lr=fast", err, sizeof err) != 0);
    CHECK_MSG(err, "spec.train.lr: expected a number, got \"fast\"");
    CHECK(e2_spec_set_arg(s, "train.steps=-4", err, sizeof err) != 0);
    CHECK_MSG(err, "spec.train.steps: expected a non-negative integer");
    CHECK(e2_spec_set_arg(s, "augment.g_weights=1,,2", err, sizeof err) != 0);
    CHECK_MSG(err, "spec.augment.g_weights[1]: expected a number");
    CHECK(e2_spec_set_arg(s, "train.lr", err, sizeof err) != 0);
    CHECK_MSG(err, "--set train.lr: expected path=value");
    CHECK(e2_spec_set_arg(s, "train=1", err, sizeof err) != 0);
    CHECK_MSG(err, "spec.train: expected an object, got number");
    CHECK(e2_spec_set_arg(s, "train={\"lr\": 1", err, sizeof err) != 0);
    CHECK_MSG(err, "spec.train: invalid JSON at column");
    CHECK(s->train->lr == 3e-3);
    e2_spec_free(s);
    return 0;
}

static int case_defaults(void) {
    E2__V1__JobSpec *s = parse(
        "{\"name\": \"d\", \"model\": {\"config\": {\"hidden_size\": 64, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 4, \"intermediate_size\": 96, \"vocab_size\": 300,"
        " \"max_position_embeddings\": 512}}, \"data\": {\"train_shards\": [\"x\"]}}");
    CHECK(s);
    CHECK(e2_spec_apply_defaults(s, err, sizeof err) == 0);
    CHECK(strcmp(s->device, "cpu") == 0 && s->has_num_workers && s->num_workers == 1);
    CHECK(s->has_priority && s->priority == 0 && s->max_restarts == 3 && s->log_every == 1);
    CHECK(strcmp(s->output_dir, "./e2-run-d") == 0);
    CHECK(s->model->init_seed == 1);
    E2__V1__LlamaConfig *c = s->model->config;
    CHECK(c->num_key_value_heads == 4 && c->rms_norm_eps == 1e-5 && c->rope_theta == 10000 &&
          c->has_tie_word_embeddings && !c->tie_word_embeddings);
    E2__V1__AugmentSpec *a = s->augment;
    CHECK(strcmp(a->method, "e2") == 0 && a->g_max == 20 && a->n_g_weights == 0 && a->n_sink == 4);
    CHECK(strcmp(a->granularity, "per_sample") == 0 && a->train_length == 4096 && a->fixed_g == 8);
    CHECK(a->has_original_window && a->original_window == 512);
    E2__V1__TrainSpec *t = s->train;
    CHECK(t->steps == 100 && t->global_batch == 16 && t->micro_batch == 4 && t->lr == 1e-5);
    CHECK(t->has_min_lr && t->min_lr == 0 && t->has_warmup_steps && t->warmup_steps == 0);
    CHECK(strcmp(t->schedule, "cosine") == 0 && t->has_weight_decay && t->weight_decay == 0);
    CHECK(t->beta1 == 0.9 && t->beta2 == 0.95 && t->adam_eps == 1e-8 && t->grad_clip == 1.0);
    CHECK(t->seed == 1 && t->has_recompute && !t->recompute && t->has_zero1 && !t->zero1);
    CHECK(s->checkpoint->has_every && s->checkpoint->every == 0 && s->checkpoint->keep_last == 2);
    E2__V1__EvalSpec *e = s->eval;
    CHECK(e->n_windows == 1 && e->windows[0] == 512 && e->n_scales == 1 && e->scales[0] == 1.0);
    CHECK(!e->has_stride && e2_spec_eval_stride(s, 512) == 256);
    CHECK(e->max_tokens == 65536 && e->has_passkey_trials && e->passkey_trials == 0);
    CHECK(e->passkey_digits == 5 && e->seed == 1 && e->has_eval_base && !e->eval_base);
    CHECK(e2_spec_validate(s, err, sizeof err) == 0);
    /* Set fields are kept. */
    E2__V1__JobSpec *k = parse("{\"name\": \"k\", \"train\": {\"lr\": 0.5, \"micro_batch\": 16}, "
                               "\"augment\": {\"n_sink\": 0}}");
    CHECK(e2_spec_apply_defaults(k, err, sizeof err) == 0);
    CHECK(k->train->lr == 0.5 && k->train->micro_batch == 16 && k->augment->n_sink == 0 &&
          k->augment->has_n_sink);
    CHECK(!k->augment->has_original_window);
    e2_spec_free(k);
    e2_spec_free(s);
    return 0;
}

static int case_micro_batch_default(void) {
    static const struct {
        uint32_t global, workers, want;
    } t[] = { { 16, 1, 4 }, { 6, 1, 3 },  { 3, 1, 3 }, { 16, 8, 2 },
              { 12, 2, 3 }, { 14, 2, 1 }, { 10, 3, 2 } };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        E2__V1__JobSpec *s = parse("{}");
        char v[32];
        snprintf(v, sizeof v, "%u", t[i].global);
        CHECK(e2_spec_set(s, "train.global_batch", v, err, sizeof err) == 0);
        snprintf(v, sizeof v, "%u", t[i].workers);
        CHECK(e2_spec_set(s, "num_workers", v, err, sizeof err) == 0);
        CHECK(e2_spec_apply_defaults(s, err, sizeof err) == 0);
        if (s->train->micro_batch != t[i].want)
            fprintf(stderr, "global %u workers %u: micro %u\n", t[i].global, t[i].workers,
                    s->train->micro_batch);
        CHECK(s->train->micro_batch == t[i].want);
        e2_spec_free(s);
    }
    return 0;
}

static int case_model_defaults(void) {
    E2__V1__JobSpec *s = parse("{\"name\": \"m\", \"model\": {\"hf_dir\": \"/ckpt\"}, \"eval\": "
                               "{\"windows\": [2048, 16384, 32768]}}");
    CHECK(s);
    CHECK(e2_spec_apply_defaults(s, err, sizeof err) == 0);
    CHECK(!s->augment->has_original_window && s->eval->n_scales == 0);
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    cfg.has_max_position_embeddings = 1;
    cfg.max_position_embeddings = 4096;
    CHECK(e2_spec_apply_model_defaults(s, &cfg, err, sizeof err) == 0);
    CHECK(s->augment->original_window == 4096);
    CHECK(s->eval->n_scales == 3 && s->eval->scales[0] == 1.0 && s->eval->scales[1] == 4.0 &&
          s->eval->scales[2] == 8.0);
    CHECK(e2_spec_eval_stride(s, 16384) == 8192);
    /* An explicit original_window wins. */
    E2__V1__JobSpec *t = parse("{\"augment\": {\"original_window\": 100}}");
    CHECK(e2_spec_apply_model_defaults(t, &cfg, err, sizeof err) == 0);
    CHECK(t->augment->original_window == 100 && t->eval->n_windows == 1 &&
          t->eval->windows[0] == 100);
    e2_spec_free(t);
    e2_spec_free(s);
    return 0;
}

static int case_validate_ok(void) {
    E2__V1__JobSpec *s = parse(good);
    CHECK(s);
    int rc = e2_spec_validate(s, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK(rc == 0);
    static const char *methods[] = { "pi", "pose", "none" };
    for (int i = 0; i < 3; i++) {
        CHECK(e2_spec_set(s, "augment.method", methods[i], err, sizeof err) == 0);
        CHECK(e2_spec_validate(s, err, sizeof err) == 0);
    }
    CHECK(e2_spec_set(s, "device", "cuda", err, sizeof err) == 0);
    CHECK(e2_spec_set(s, "model", "{\"hf_dir\": \"/m\"}", err, sizeof err) == 0);
    CHECK(e2_spec_set(s, "model.config", "null", err, sizeof err) == 0);
    rc = e2_spec_validate(s, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK(rc == 0);
    e2_spec_free(s);
    return 0;
}

/* One override each on the good spec, and the line the validator gives. */
static int case_validate_ranges(void) {
    static const struct {
        const char *path, *value, *want;
    } t[] = {
        { "name", "has space", "spec.name must match [A-Za-z0-9._-]{1,64} (got \"has space\")" },
        { "name", "", "spec.name must match" },
        { "name", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          "spec.name must match" },
        { "labels.bad key", "v", "spec.labels key \"bad key\" must match" },
        { "device", "tpu", "spec.device must be one of \"cpu\", \"cuda\" (got \"tpu\")" },
        { "num_workers", "0", "spec.num_workers must be in [1, 1024] (got 0)" },
        { "num_workers", "3", "spec.num_workers (3) must divide spec.train.global_batch (8)" },
        { "max_restarts", "5000", "spec.max_restarts must be in [0, 1000] (got 5000)" },
        { "min_workers", "0", "spec.min_workers must be in [1, 2] (got 0)" },
        { "min_workers", "3", "spec.min_workers must be in [1, 2] (got 3)" },
        { "model.hf_dir", "/x", "spec.model.config must be empty when spec.model.hf_dir is set" },
        { "model.config.hidden_size", "0",
          "spec.model.config.hidden_size must be in [1, 65536] (got 0)" },
        { "model.config.hidden_size", "66",
          "spec.model.config.num_attention_heads (4) must divide spec.model.config.hidden_size "
          "(66)" },
        { "model.config.hidden_size", "12",
          "head dim hidden_size / num_attention_heads (12 / 4 = 3) must be even" },
        { "model.config.num_key_value_heads", "3",
          "spec.model.config.num_key_value_heads (3) must divide "
          "spec.model.config.num_attention_heads (4)" },
        { "model.config.num_key_value_heads", "8",
          "spec.model.config.num_key_value_heads must be in [1, 4] (got 8)" },
        { "model.config.num_hidden_layers", "0",
          "spec.model.config.num_hidden_layers must be in [1, 1024] (got 0)" },
        { "model.config.intermediate_size", "0",
          "spec.model.config.intermediate_size must be in [1, 1048576] (got 0)" },
        { "model.config.vocab_size", "1",
          "spec.model.config.vocab_size must be in [2, 16777216] (got 1)" },
        { "model.config.max_position_embeddings", "1",
          "spec.model.config.max_position_embeddings must be in [2, 16777216] (got 1)" },
        { "model.config.rms_norm_eps", "0",
          "spec.model.config.rms_norm_eps must be in (0, 1) (got 0)" },
        { "model.config.rope_theta", "0.5",
          "spec.model.config.rope_theta must be in [1, 1e+12] (got 0.5)" },
        { "data.train_shards", "", "spec.data.train_shards is required" },
        { "data.eval_shards", "a,,b", "spec.data.eval_shards[1] must be a non-empty path" },
        { "augment.method", "yarn",
          "spec.augment.method must be one of \"e2\", \"pi\", \"pose\", \"none\", \"ntk\" (got "
          "\"yarn\")" },
        { "eval.rope_scheme", "yarn",
          "spec.eval.rope_scheme must be one of e2, pi, pose, none, ntk (got \"yarn\")" },
        { "augment.g_max", "0", "spec.augment.g_max must be in [1, 1024] (got 0)" },
        { "augment.g_max", "2000", "spec.augment.g_max must be in [1, 1024] (got 2000)" },
        { "augment.g_weights", "1,2,3",
          "spec.augment.g_weights must have g_max (4) entries, one per g in 1..4 (got 3)" },
        { "augment.g_weights", "1,-2,3,4",
          "spec.augment.g_weights[1] must be finite and >= 0 (got -2)" },
        { "augment.g_weights", "0,0,0,0",
          "spec.augment.g_weights must have a positive finite sum (got 0)" },
        { "augment.g_weights", "1,NaN,1,1",
          "spec.augment.g_weights[1] must be finite and >= 0 (got nan)" },
        { "augment.granularity", "per_batch",
          "spec.augment.granularity must be one of \"per_sample\", \"per_step\"" },
        { "augment.train_length", "1",
          "spec.augment.train_length must be in [2, 1048576] (got 1)" },
        { "augment.n_sink", "128", "spec.augment.n_sink must be in [0, 127] (got 128)" },
        { "augment.fixed_g", "0.5", "spec.augment.fixed_g must be in [1, 1024] (got 0.5)" },
        { "augment.original_window", "1",
          "spec.augment.original_window must be in [2, 16777216] (got 1)" },
        { "train.steps", "0", "spec.train.steps must be in [1, 1000000000] (got 0)" },
        { "train.global_batch", "0", "spec.train.global_batch must be in [1, 1048576] (got 0)" },
        { "train.global_batch", "3",
          "spec.num_workers (2) must divide spec.train.global_batch (3)" },
        { "train.micro_batch", "0", "spec.train.micro_batch must be in [1, 1048576] (got 0)" },
        { "train.micro_batch", "3",
          "spec.train.micro_batch (3) must divide spec.train.global_batch (8)" },
        { "train.lr", "0", "spec.train.lr must be in (0, 1] (got 0)" },
        { "train.lr", "Infinity", "spec.train.lr must be in (0, 1] (got inf)" },
        { "train.min_lr", "0.001", "spec.train.min_lr must be in [0, 0.0003] (got 0.001)" },
        { "train.warmup_steps", "51", "spec.train.warmup_steps must be in [0, 50] (got 51)" },
        { "train.schedule", "step",
          "spec.train.schedule must be one of \"cosine\", \"linear\", \"constant\" (got "
          "\"step\")" },
        { "train.weight_decay", "-1", "spec.train.weight_decay must be in [0, 10] (got -1)" },
        { "train.beta1", "1", "spec.train.beta1 must be in [0, 1) (got 1)" },
        { "train.beta2", "-0.1", "spec.train.beta2 must be in [0, 1) (got -0.1)" },
        { "train.adam_eps", "0", "spec.train.adam_eps must be in (0, 1] (got 0)" },
        { "train.grad_clip", "-1", "spec.train.grad_clip must be in [0, 1e+06] (got -1)" },
        { "checkpoint.every", "51", "spec.checkpoint.every must be in [0, 50] (got 51)" },
        { "checkpoint.keep_last", "0", "spec.checkpoint.keep_last must be in [1, 1000] (got 0)" },
        { "eval.windows", "256,1", "spec.eval.windows[1] must be in [2, 16777216] (got 1)" },
        { "eval.scales", "1",
          "spec.eval.scales must be empty or have one entry per window (2, got 1)" },
        { "eval.scales", "1,0.5", "spec.eval.scales[1] must be in [1, 1024] (got 0.5)" },
        { "eval.stride", "0", "spec.eval.stride must be in [1, 256] (got 0)" },
        { "eval.stride", "300", "spec.eval.stride must be in [1, 256] (got 300)" },
        { "eval.max_tokens", "0", "spec.eval.max_tokens must be in [1, 2147483647] (got 0)" },
        { "eval.passkey_trials", "100001",
          "spec.eval.passkey_trials must be in [0, 100000] (got 100001)" },
        { "eval.passkey_digits", "0", "spec.eval.passkey_digits must be in [1, 18] (got 0)" },
        { "eval.filler_tokens", "1,257",
          "spec.eval.filler_tokens[1] must be a token id in [0, 256] (got 257)" },
        { "eval.prompt_prefix_tokens", "-1",
          "spec.eval.prompt_prefix_tokens[0] must be a token id in [0, 256] (got -1)" },
        { "eval.prompt_suffix_tokens", "300",
          "spec.eval.prompt_suffix_tokens[0] must be a token id" },
        { "eval.digit_tokens", "1,2,3",
          "spec.eval.digit_tokens must be empty or hold ten ids for '0'..'9' (got 3)" },
        { "eval.key_pre_tokens", "257", "spec.eval.key_pre_tokens[0] must be a token id" },
        { "eval.key_post_tokens", "1,-1", "spec.eval.key_post_tokens[1] must be a token id" },
        { "output_dir", "", "spec.output_dir must be a path of 1 to 4095 bytes" },
        { "log_every", "0", "spec.log_every must be in [1, 1000000000] (got 0)" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        E2__V1__JobSpec *s = parse(good);
        CHECK(s);
        if (e2_spec_set(s, t[i].path, t[i].value, err, sizeof err) != 0) {
            fprintf(stderr, "set %s=%s: %s\n", t[i].path, t[i].value, err);
            return 1;
        }
        err[0] = '\0';
        int rc = e2_spec_validate(s, err, sizeof err);
        if (rc == 0) fprintf(stderr, "accepted %s=%s\n", t[i].path, t[i].value);
        CHECK(rc != 0);
        CHECK(strchr(err, '\n') == NULL);
        CHECK_MSG(err, t[i].want);
        e2_spec_free(s);
    }
    /* min_workers: default num_workers; an elastic gang must split the
     * global batch evenly. */
    E2__V1__JobSpec *m = parse(good);
    CHECK(e2_spec_set(m, "num_workers", "4", err, sizeof err) == 0);
    CHECK(e2_spec_validate(m, err, sizeof err) == 0);
    CHECK(e2_spec_apply_defaults(m, err, sizeof err) == 0);
    CHECK(m->has_min_workers && m->min_workers == 4);
    e2_spec_free(m);
    m = parse(good);
    CHECK(e2_spec_set(m, "num_workers", "4", err, sizeof err) == 0);
    CHECK(e2_spec_set(m, "min_workers", "2", err, sizeof err) == 0);
    CHECK(e2_spec_validate(m, err, sizeof err) == 0);
    CHECK(e2_spec_set(m, "min_workers", "3", err, sizeof err) == 0);
    CHECK(e2_spec_validate(m, err, sizeof err) != 0);
    CHECK(strchr(err, '\n') == NULL);
    CHECK_MSG(err, "spec.min_workers (3) must divide spec.train.global_batch (8): an elastic "
                   "restart splits the global batch evenly over its ranks");
    e2_spec_free(m);
    /* Interpolated windows must keep t and positions in int32. */
    E2__V1__JobSpec *w = parse(good);
    CHECK(e2_spec_set(w, "augment.g_max", "1024", err, sizeof err) == 0);
    CHECK(e2_spec_set(w, "augment.g_weights", "", err, sizeof err) == 0);
    CHECK(e2_spec_set(w, "augment.original_window", "16000000", err, sizeof err) == 0);
    CHECK(e2_spec_validate(w, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.augment: the largest interpolated window g * original_window (1024 * "
                   "16000000) must be below 2^31");
    e2_spec_free(w);
    /* Model missing or both unset. */
    E2__V1__JobSpec *s = parse("{\"name\": \"x\", \"data\": {\"train_shards\": [\"a\"]}}");
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.model is required");
    CHECK(e2_spec_set(s, "model.init_seed", "3", err, sizeof err) == 0);
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.model needs hf_dir or config");
    CHECK(e2_spec_set(s, "model.config.hidden_size", "8", err, sizeof err) == 0);
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.model.config.num_hidden_layers is required");
    e2_spec_free(s);
    return 0;
}

/* Validation applies defaults to a copy only. */
static int case_validate_pure(void) {
    E2__V1__JobSpec *s = parse(good);
    char *before = e2_spec_to_json(s, 0);
    CHECK(e2_spec_validate(s, err, sizeof err) == 0);
    char *after = e2_spec_to_json(s, 0);
    CHECK(strcmp(before, after) == 0);
    free(before);
    free(after);
    e2_spec_free(s);
    return 0;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int case_load_resolves(void) {
    char dir[] = "/tmp/e2-spec-XXXXXX";
    CHECK(mkdtemp(dir));
    char path[512], real[4096];
    snprintf(path, sizeof path, "%s/job.json", dir);
    CHECK(
        write_file(path,
                   "{\"name\": \"r\", \"data\": {\"train_shards\": [\"d/t_*.bin\", \"/abs/x.bin\"],"
                   " \"eval_shards\": [\"v.bin\"]}, \"model\": {\"hf_dir\": \"m\"}}") == 0);
    E2__V1__JobSpec *s = e2_spec_load(path, err, sizeof err);
    CHECK(s);
    CHECK(realpath(dir, real));
    char want[4608];
    snprintf(want, sizeof want, "%s/d/t_*.bin", real);
    CHECK(strcmp(s->data->train_shards[0], want) == 0);
    CHECK(strcmp(s->data->train_shards[1], "/abs/x.bin") == 0);
    snprintf(want, sizeof want, "%s/v.bin", real);
    CHECK(strcmp(s->data->eval_shards[0], want) == 0);
    snprintf(want, sizeof want, "%s/m", real);
    CHECK(strcmp(s->model->hf_dir, want) == 0);
    e2_spec_free(s);
    /* Errors name the file. */
    CHECK(write_file(path, "{\"name\": \"r\",\n \"bogus\": 1}") == 0);
    CHECK(e2_spec_load(path, err, sizeof err) == NULL);
    CHECK_MSG(err, path);
    CHECK_MSG(err, "spec.bogus: unknown field");
    unlink(path);
    CHECK(e2_spec_load(path, err, sizeof err) == NULL);
    CHECK_MSG(err, "cannot open spec file");
    rmdir(dir);
    return 0;
}

static int case_check_files(void) {
    char dir[] = "/tmp/e2-spec-XXXXXX";
    CHECK(mkdtemp(dir));
    char p[512], pat[512];
    snprintf(pat, sizeof pat, "%s/t_*.bin", dir);
    E2__V1__JobSpec *s = parse("{}");
    CHECK(e2_spec_set(s, "data.train_shards", pat, err, sizeof err) == 0);
    CHECK(e2_spec_check_files(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.data.train_shards[0]: no file matches");
    snprintf(p, sizeof p, "%s/t_000.bin", dir);
    CHECK(write_file(p, "x") == 0);
    CHECK(e2_spec_check_files(s, err, sizeof err) == 0);
    CHECK(e2_spec_set(s, "model.hf_dir", dir, err, sizeof err) == 0);
    CHECK(e2_spec_check_files(s, err, sizeof err) != 0);
    CHECK_MSG(err, "config.json\" is not readable");
    char cj[512];
    snprintf(cj, sizeof cj, "%s/config.json", dir);
    CHECK(write_file(cj, "{}") == 0);
    CHECK(e2_spec_check_files(s, err, sizeof err) == 0);
    unlink(cj);
    unlink(p);
    rmdir(dir);
    e2_spec_free(s);
    return 0;
}

static uint64_t fz = 88172645463325252ull;
static uint64_t fz_next(void) {
    fz ^= fz << 13;
    fz ^= fz >> 7;
    fz ^= fz << 17;
    return fz;
}

/* Random edits of the good spec never crash parse, defaults or validation. */
static int case_fuzz(void) {
    size_t n = strlen(good);
    char *buf = malloc(n + 1);
    int parsed = 0;
    for (int it = 0; it < 4000; it++) {
        memcpy(buf, good, n + 1);
        for (int k = 0, edits = 1 + (int)(fz_next() % 3); k < edits; k++)
            buf[fz_next() % n] = "{}[]\",:019-.e "[fz_next() % 14];
        err[0] = '\0';
        E2__V1__JobSpec *s = parse(buf);
        CHECK(s != NULL || err[0] != '\0');
        if (!s) continue;
        parsed++;
        e2_spec_validate(s, err, sizeof err);
        CHECK(e2_spec_apply_defaults(s, err, sizeof err) == 0);
        e2_spec_validate(s, err, sizeof err);
        e2_spec_free(s);
    }
    free(buf);
    CHECK(parsed > 0);
    return 0;
}

/* A comma list of n token ids (1,1,...) for --set. */
static char *id_list(size_t n) {
    char *t = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) t[2 * i] = '1', t[2 * i + 1] = ',';
    t[n ? 2 * n - 1 : 0] = '\0';
    return t;
}

/* eval.filler_tokens has a count limit, named with the limit in the error. */
static int case_limit_filler_tokens(void) {
    E2__V1__JobSpec *s = parse(good);
    CHECK(s);
    char *ok = id_list(E2_SPEC_FILLER_TOKENS_MAX), *over = id_list(E2_SPEC_FILLER_TOKENS_MAX + 1);
    CHECK(e2_spec_set(s, "eval.filler_tokens", ok, err, sizeof err) == 0);
    CHECK(e2_spec_validate(s, err, sizeof err) == 0);
    CHECK(e2_spec_set(s, "eval.filler_tokens", over, err, sizeof err) == 0);
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.eval.filler_tokens must have at most 4096 entries (got 4097)");
    free(ok);
    free(over);
    e2_spec_free(s);
    return 0;
}

/* Shard pattern lists have a count limit. */
static int case_limit_shard_patterns(void) {
    E2__V1__JobSpec *s = parse(good);
    CHECK(s);
    size_t n = E2_SPEC_SHARD_PATTERNS_MAX + 1;
    char *list = malloc(n * 8 + 1);
    list[0] = '\0';
    for (size_t i = 0; i < n; i++) strcat(list, i ? ",/d/x" : "/d/x");
    CHECK(e2_spec_set(s, "data.eval_shards", list, err, sizeof err) == 0);
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.data.eval_shards must have at most 256 entries (got 257)");
    free(list);
    e2_spec_free(s);
    return 0;
}

/* The whole spec has a byte limit (64 KiB encoded), whatever field makes
 * it large. */
static int case_limit_spec_bytes(void) {
    E2__V1__JobSpec *s = parse(good);
    CHECK(s);
    char *big = malloc(4096);
    memset(big, 'a', 4000);
    big[0] = '/';
    big[4000] = '\0';
    char *list = malloc(20 * 4001 + 1);
    list[0] = '\0';
    for (int i = 0; i < 20; i++) {
        if (i) strcat(list, ",");
        strcat(list, big);
    }
    CHECK(e2_spec_set(s, "data.train_shards", list, err, sizeof err) == 0);
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "over the limit of 65536 bytes");
    free(big);
    free(list);
    e2_spec_free(s);
    return 0;
}

/* Labels: count, key and value length limits named in the error. */
static int case_limit_labels(void) {
    E2__V1__JobSpec *s = parse(good);
    CHECK(s);
    char v[300];
    memset(v, 'x', 257);
    v[257] = '\0';
    CHECK(e2_spec_set(s, "labels.team", v, err, sizeof err) == 0);
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.labels.team must be at most 256 bytes (got 257)");
    e2_spec_free(s);
    s = parse(good);
    char k[80];
    for (int i = 0; i < 64; i++) {
        snprintf(k, sizeof k, "labels.k%d", i);
        CHECK(e2_spec_set(s, k, "v", err, sizeof err) == 0);
    }
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.labels must have at most 64 entries (got 66)");
    e2_spec_free(s);
    return 0;
}

/* A labels map that repeats a key (possible on the wire, not in JSON) is
 * refused naming the key, instead of one entry winning silently. */
static int case_labels_duplicate_key(void) {
    E2__V1__JobSpec *s = parse(good);
    CHECK(s);
    CHECK(s->n_labels == 2);
    free(s->labels[1]->key);
    s->labels[1]->key = strdup(s->labels[0]->key);
    CHECK(e2_spec_validate(s, err, sizeof err) != 0);
    char want[128];
    snprintf(want, sizeof want, "spec.labels: duplicate key \"%s\"", s->labels[0]->key);
    CHECK_MSG(err, want);
    e2_spec_free(s);
    return 0;
}

/* Data roots: a path outside them is refused naming the field and the
 * roots; paths inside (and globs there) pass; ".." cannot climb out. */
static int case_roots_outside_refused(void) {
    E2__V1__JobSpec *s = parse(good);
    CHECK(s);
    const char *roots = "/srv/a:/data";
    CHECK(e2_spec_check_roots(s, roots, NULL, 0, err, sizeof err) == 0);
    CHECK(e2_spec_set(s, "data.eval_shards", "/etc/shadow", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, roots, NULL, 0, err, sizeof err) != 0);
    CHECK_MSG(err,
              "spec.data.eval_shards[0]: \"/etc/shadow\" is outside the data roots (/srv/a:/data)");
    CHECK(e2_spec_set(s, "data.eval_shards", "/data/../etc/shadow", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, roots, NULL, 0, err, sizeof err) != 0);
    CHECK_MSG(
        err,
        "spec.data.eval_shards[0]: \"/data/../etc/shadow\" must be a normalized absolute path");
    CHECK(e2_spec_set(s, "data.eval_shards", "/data//x.bin", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, roots, NULL, 0, err, sizeof err) != 0);
    CHECK(e2_spec_set(s, "data.eval_shards", "data/x.bin", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, roots, NULL, 0, err, sizeof err) != 0);
    CHECK(e2_spec_set(s, "data.eval_shards", "/database/x.bin", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, roots, NULL, 0, err, sizeof err) != 0);
    CHECK(e2_spec_set(s, "data.eval_shards", "/data/v/*.bin", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, roots, NULL, 0, err, sizeof err) == 0);
    CHECK(e2_spec_set(s, "resume_from", "/home/u/run/step_10", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, roots, NULL, 0, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.resume_from: \"/home/u/run/step_10\" is outside the data roots");
    CHECK(e2_spec_set(s, "resume_from", "", err, sizeof err) == 0);
    CHECK(e2_spec_set(s, "output_dir", "/tmp/out", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, roots, "/srv/export", 0, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.output_dir: \"/tmp/out\" is outside the export root (/srv/export)");
    /* No roots: any path, as before. */
    CHECK(e2_spec_set(s, "data.eval_shards", "/etc/shadow", err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, "", NULL, 0, err, sizeof err) == 0);
    e2_spec_free(s);
    return 0;
}

/* A link inside a root that points outside is refused once resolved: at
 * submit when the link is a folder on the way, on the worker (deep) for
 * every matched file and every entry of hf_dir; the error never names the
 * link's target. */
static int case_roots_symlink_resolved(void) {
    char root[] = "/tmp/e2-roots-XXXXXX", out[] = "/tmp/e2-out-XXXXXX";
    CHECK(mkdtemp(root) && mkdtemp(out));
    char p[512], q[512], pat[512];
    snprintf(p, sizeof p, "%s/secret.txt", out);
    CHECK(write_file(p, "secret") == 0);
    snprintf(q, sizeof q, "%s/t_000.bin", root);
    CHECK(symlink(p, q) == 0);
    snprintf(pat, sizeof pat, "%s/t_*.bin", root);
    E2__V1__JobSpec *s = parse("{}");
    CHECK(e2_spec_set(s, "data.train_shards", pat, err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, root, NULL, 0, err, sizeof err) == 0); /* the text is inside */
    CHECK(e2_spec_check_roots(s, root, NULL, 1, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.data.train_shards[0]");
    CHECK_MSG(err, "resolves (through a symbolic link) to a path outside the data roots");
    CHECK(strstr(err, "secret") == NULL && strstr(err, out) == NULL);
    /* A linked folder on the way is caught at submit already. */
    snprintf(q, sizeof q, "%s/linkdir", root);
    CHECK(symlink(out, q) == 0);
    snprintf(pat, sizeof pat, "%s/linkdir/*.txt", root);
    CHECK(e2_spec_set(s, "data.train_shards", pat, err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, root, NULL, 0, err, sizeof err) != 0);
    CHECK_MSG(err, "resolves (through a symbolic link)");
    /* hf_dir: a real folder inside whose config.json links out. */
    char m[512];
    snprintf(m, sizeof m, "%s/model", root);
    CHECK(mkdir(m, 0755) == 0);
    snprintf(q, sizeof q, "%s/model/config.json", root);
    CHECK(symlink(p, q) == 0);
    e2_spec_free(s);
    s = parse("{}");
    CHECK(e2_spec_set(s, "model.hf_dir", m, err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, root, NULL, 0, err, sizeof err) == 0);
    CHECK(e2_spec_check_roots(s, root, NULL, 1, err, sizeof err) != 0);
    CHECK_MSG(err, "spec.model.hf_dir");
    e2_spec_free(s);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", root, out);
    CHECK(system(cmd) == 0);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        { "round_trip", case_round_trip },
        { "unknown_top", case_unknown_top },
        { "unknown_nested", case_unknown_nested },
        { "wrong_types", case_wrong_types },
        { "empty_body", case_empty_body },
        { "malformed", case_malformed },
        { "set_overrides", case_set_overrides },
        { "defaults", case_defaults },
        { "micro_batch_default", case_micro_batch_default },
        { "model_defaults", case_model_defaults },
        { "validate_ok", case_validate_ok },
        { "validate_ranges", case_validate_ranges },
        { "validate_pure", case_validate_pure },
        { "load_resolves", case_load_resolves },
        { "check_files", case_check_files },
        { "fuzz", case_fuzz },
        { "limit_filler_tokens", case_limit_filler_tokens },
        { "limit_shard_patterns", case_limit_shard_patterns },
        { "limit_spec_bytes", case_limit_spec_bytes },
        { "limit_labels", case_limit_labels },
        { "labels_duplicate_key", case_labels_duplicate_key },
        { "roots_outside_refused", case_roots_outside_refused },
        { "roots_symlink_resolved", case_roots_symlink_resolved },
        { NULL, NULL },
    };
    return check_main(cases, argc, argv);
}
