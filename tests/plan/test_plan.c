/* test_plan.c -- the memory planner against hand-computed byte counts for a
 * small config, against the model's own activation allocation, and its
 * verdicts (fits / refusal with numbers, e2d's job check, the CLI's exit
 * statuses). Run as `test_plan CASE`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2/v1/job.pb-c.h"
#include "k.h"
#include "model.h"
#include "plan_cli.h"

#include "../expect.h"

/* C=8, 2 layers, 2 heads of D=4, 1 kv head, F=16, V=32, untied. */
static E2__V1__LlamaConfig small_cfg(void) {
    E2__V1__LlamaConfig c = E2__V1__LLAMA_CONFIG__INIT;
    c.has_hidden_size = 1, c.hidden_size = 8;
    c.has_num_hidden_layers = 1, c.num_hidden_layers = 2;
    c.has_num_attention_heads = 1, c.num_attention_heads = 2;
    c.has_num_key_value_heads = 1, c.num_key_value_heads = 1;
    c.has_intermediate_size = 1, c.intermediate_size = 16;
    c.has_vocab_size = 1, c.vocab_size = 32;
    c.has_max_position_embeddings = 1, c.max_position_embeddings = 64;
    return c;
}

/* Hand count (see the comments for each term):
 * params: wte 32*8=256, ln1 2*8=16, qkv 2*(2+2*1)*4*8=256, wo 2*8*8=128,
 * ln2 16, gate|up 2*32*8=512, down 2*8*16=256, lnf 8, head 256 -> 1704. */
static void case_hand_counts(void) {
    E2__V1__LlamaConfig c = small_cfg();
    e2w_plan_opts o = { .gpus = 2, .micro_batch = 1, .seq = 4, .act_bytes = 2, .gpu_mem_gb = 1 };
    e2w_plan p;
    char err[256];
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(p.n_params == 1704, "n_params %llu", (unsigned long long)p.n_params);
    /* bf16 weights, fp32 gradients (k.h: fp32 on every backend) */
    EXPECT(p.params == 3408 && p.grads == 1704 * 4, "params %llu grads %llu",
           (unsigned long long)p.params, (unsigned long long)p.grads);
    EXPECT(p.optim == 1704 * 12, "optim %llu", (unsigned long long)p.optim);
    /* N = 4 rows, bf16, every piece rounded up to 64 bytes:
     * block: ln1 64, rstd1 64, qkv 128, atty 64, lse 64, mid 64, ln2 64,
     * rstd2 64, fch 256, swi 128 = 960; top: tokens/targets/losses 192,
     * residual 3*64 = 192, lnf 64, rstdf 64, logits 256, 2 blocks 1920;
     * backward: dres 64, dln 64, dqkv 128, datty 64, dfch 256, dswi 128,
     * delta 64 = 768. Total 3456. */
    EXPECT(p.acts == 3456, "acts %llu", (unsigned long long)p.acts);
    /* cuBLASLt 32 MiB, colsum 64*8*4 = 2048, token groups (3*4+1)*4 = 52,
     * norm partials 8192. */
    EXPECT(p.scratch == (32u << 20) + 2048 + 52 + 8192, "scratch %llu",
           (unsigned long long)p.scratch);
    EXPECT(p.total == 3408 + 1704 * 4 + 1704 * 12 + 3456 + p.scratch + E2W_PLAN_RUNTIME_RESERVE,
           "total %llu", (unsigned long long)p.total);
    o.recompute = 1; /* one block kept: 3456 - 960 */
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(p.acts == 2496, "recompute acts %llu", (unsigned long long)p.acts);
    o.act_bytes = 4; /* cpu: fp32, m and v only, no backend scratch */
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(p.params == 1704 * 4 && p.optim == 1704 * 8 && p.scratch == 0 && p.reserve == 0,
           "cpu params %llu optim %llu", (unsigned long long)p.params, (unsigned long long)p.optim);
}

static void case_zero1_shards(void) {
    E2__V1__LlamaConfig c = small_cfg();
    e2w_plan_opts o = { .gpus = 3, .zero1 = 1, .micro_batch = 1, .seq = 4, .act_bytes = 2 };
    e2w_plan p;
    char err[256];
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(p.optim == 568 * 12, "1704 params over 3 ranks: %llu", (unsigned long long)p.optim);
    o.gpus = 5; /* ceil(1704 / 5) = 341 */
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(p.optim == 341 * 12, "1704 params over 5 ranks: %llu", (unsigned long long)p.optim);
}

/* The published parameter count of Llama-2-7B. */
static void case_llama2_7b_params(void) {
    E2__V1__LlamaConfig c = E2__V1__LLAMA_CONFIG__INIT;
    c.has_hidden_size = 1, c.hidden_size = 4096;
    c.has_num_hidden_layers = 1, c.num_hidden_layers = 32;
    c.has_num_attention_heads = 1, c.num_attention_heads = 32;
    c.has_intermediate_size = 1, c.intermediate_size = 11008;
    c.has_vocab_size = 1, c.vocab_size = 32000;
    e2w_plan_opts o = { .gpus = 8, .micro_batch = 1, .seq = 4096, .act_bytes = 2 };
    e2w_plan p;
    char err[256];
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(p.n_params == 6738415616ull, "n_params %llu", (unsigned long long)p.n_params);
}

/* The planner's activation figure is the model's allocation, for tied and
 * untied, GQA and not, with and without backward and recompute (fp32 acts
 * on the CPU backend). */
static void case_acts_match_model(void) {
    struct {
        int C, L, H, KVH, F, V, tied, B, T;
    } cs[] = {
        { 8, 2, 2, 1, 16, 32, 0, 1, 4 },
        { 48, 3, 6, 2, 72, 100, 1, 2, 37 },
        { 64, 1, 4, 4, 160, 257, 0, 3, 65 },
        { 32, 2, 4, 2, 64, 300, 0, 2, 300 }, /* forward-only logits in chunks */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        E2__V1__LlamaConfig c = E2__V1__LLAMA_CONFIG__INIT;
        c.has_hidden_size = 1, c.hidden_size = (uint32_t)cs[i].C;
        c.has_num_hidden_layers = 1, c.num_hidden_layers = (uint32_t)cs[i].L;
        c.has_num_attention_heads = 1, c.num_attention_heads = (uint32_t)cs[i].H;
        c.has_num_key_value_heads = 1, c.num_key_value_heads = (uint32_t)cs[i].KVH;
        c.has_intermediate_size = 1, c.intermediate_size = (uint32_t)cs[i].F;
        c.has_vocab_size = 1, c.vocab_size = (uint32_t)cs[i].V;
        c.has_max_position_embeddings = 1, c.max_position_embeddings = 256;
        c.has_tie_word_embeddings = 1, c.tie_word_embeddings = cs[i].tied;
        e2w_model_config mc;
        e2w_model m;
        char err[256];
        EXPECT(e2w_model_config_from_proto(&mc, &c, err, sizeof err) == 0, "%s", err);
        EXPECT(e2w_model_create(&m, k_cpu(), &mc, err, sizeof err) == 0, "%s", err);
        e2w_plan_opts o = { .gpus = 1, .micro_batch = cs[i].B, .seq = cs[i].T, .act_bytes = 4 };
        e2w_plan p;
        EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
        EXPECT(p.n_params == m.n_params, "config %zu: n_params %llu vs model %zu", i,
               (unsigned long long)p.n_params, m.n_params);
        for (int backward = 0; backward <= 1; backward++) {
            for (int rec = 0; rec <= 1; rec++) {
                e2w_acts a;
                EXPECT(e2w_acts_create(&a, &m, cs[i].B, cs[i].T, backward, rec, err, sizeof err) ==
                           0,
                       "%s", err);
                uint64_t want = a.bytes;
                uint64_t got = e2w_plan_acts_bytes(&c, cs[i].B, cs[i].T, 4, backward, rec);
                EXPECT(got == want, "config %zu backward %d recompute %d: plan %llu, model %llu", i,
                       backward, rec, (unsigned long long)got, (unsigned long long)want);
                e2w_acts_free(&a, &m);
            }
        }
        e2w_model_free(&m);
    }
}

static void case_fits_boundary(void) {
    E2__V1__LlamaConfig c = small_cfg();
    e2w_plan_opts o = { .gpus = 1, .micro_batch = 1, .seq = 4, .act_bytes = 2 };
    e2w_plan p;
    char err[512];
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(!e2w_plan_fits(&p), "unknown capacity never fits");
    o.gpu_mem_gb = (double)p.total / 1e9;
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(e2w_plan_fits(&p) == (p.capacity >= p.total), "exact capacity");
    o.gpu_mem_gb = (double)(p.total - 1000) / 1e9;
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(!e2w_plan_fits(&p), "1000 bytes short does not fit");
    e2w_plan_refusal(&p, err, sizeof err);
    EXPECT(strstr(err, "per GPU") && strstr(err, "optimizer 0.00") && strstr(err, "recompute"),
           "refusal names the numbers and a fix: %s", err);
    char table[4096];
    e2w_plan_format(&p, table, sizeof table);
    EXPECT(strstr(table, "DOES NOT FIT") != NULL, "table verdict: %s", table);
}

static void case_bad_config(void) {
    E2__V1__LlamaConfig c = small_cfg();
    c.num_key_value_heads = 3;
    e2w_plan_opts o = { .gpus = 1, .micro_batch = 1, .seq = 4, .act_bytes = 2 };
    e2w_plan p;
    char err[256] = "";
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) < 0, "kv heads 3 of 2 accepted");
    EXPECT(strstr(err, "num_key_value_heads") != NULL, "error names the field: %s", err);
    c = small_cfg();
    o.micro_batch = 0;
    EXPECT(e2w_plan_compute(&p, &c, &o, err, sizeof err) < 0, "micro-batch 0 accepted");
}

static void case_check_job(void) {
    E2__V1__LlamaConfig c = small_cfg();
    E2__V1__ModelSpec model = E2__V1__MODEL_SPEC__INIT;
    E2__V1__TrainSpec train = E2__V1__TRAIN_SPEC__INIT;
    E2__V1__AugmentSpec aug = E2__V1__AUGMENT_SPEC__INIT;
    E2__V1__JobSpec spec = E2__V1__JOB_SPEC__INIT;
    model.config = &c;
    train.has_micro_batch = 1, train.micro_batch = 2;
    aug.has_train_length = 1, aug.train_length = 16;
    spec.model = &model, spec.train = &train, spec.augment = &aug;
    spec.device = "cpu";
    char err[512] = "";
    EXPECT(e2w_plan_check_job(&spec, 0.001, err, sizeof err) == 0, "cpu jobs are not checked");
    spec.device = "cuda";
    EXPECT(e2w_plan_check_job(&spec, 80, err, sizeof err) == 0, "tiny model on 80 GB: %s", err);
    EXPECT(e2w_plan_check_job(&spec, 0.5, err, sizeof err) == -1, "tiny model on 0.5 GB");
    EXPECT(strstr(err, "B=2 T=16") != NULL, "refusal uses the spec's shape: %s", err);
    /* train.zero1 shards the optimizer in e2d's plan too: on 4 GPUs with
     * room between the two totals, the job fits only with it. */
    spec.has_num_workers = 1, spec.num_workers = 4;
    e2w_plan_opts o = { .gpus = 4, .micro_batch = 2, .seq = 16, .act_bytes = 2 };
    e2w_plan plain, sharded;
    EXPECT(e2w_plan_compute(&plain, &c, &o, err, sizeof err) == 0, "%s", err);
    o.zero1 = 1;
    EXPECT(e2w_plan_compute(&sharded, &c, &o, err, sizeof err) == 0, "%s", err);
    double between = (double)(plain.total + sharded.total) / 2e9;
    EXPECT(sharded.total < plain.total, "zero1 plan %llu vs %llu",
           (unsigned long long)sharded.total, (unsigned long long)plain.total);
    EXPECT(e2w_plan_check_job(&spec, between, err, sizeof err) == -1, "fits without zero1 at %g GB",
           between);
    train.has_zero1 = 1, train.zero1 = 1;
    EXPECT(e2w_plan_check_job(&spec, between, err, sizeof err) == 0, "zero1 job at %g GB: %s",
           between, err);
    model.config = NULL;
    model.hf_dir = "/nonexistent/e2-plan-test";
    EXPECT(e2w_plan_check_job(&spec, 80, err, sizeof err) == 1,
           "unreadable config is 'cannot tell'");
}

static void case_cli_status(void) {
    char err[512];
    char *fits[] = { "--model", "llama-2-7b", "--gpus", "8", "--gpu-mem", "80", "--zero1" };
    char *over[] = { "--model", "llama-2-7b", "--gpus", "8", "--gpu-mem", "80" };
    char *bad[] = { "--model", "llama-2-7b", "--gpus", "0", "--gpu-mem", "80" };
    char *missing[] = { "--gpus", "8" };
    EXPECT(e2w_plan_main(7, fits, err, sizeof err) == 0, "7B with ZeRO-1 on 8 x 80 GB fits: %s",
           err);
    err[0] = '\0';
    EXPECT(e2w_plan_main(6, over, err, sizeof err) == 1, "7B without ZeRO-1 does not fit");
    EXPECT(strstr(err, "needs") != NULL, "refusal line: %s", err);
    EXPECT(e2w_plan_main(6, bad, err, sizeof err) == 2 && strstr(err, "--gpus"), "--gpus 0: %s",
           err);
    EXPECT(e2w_plan_main(2, missing, err, sizeof err) == 2 && strstr(err, "--model"), "missing: %s",
           err);
}

/* --model takes a Hugging Face config.json (or its directory). */
static void case_cli_config_file(void) {
    char dir[] = "/tmp/e2-plan-XXXXXX", path[64], err[512] = "";
    EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    EXPECT(f != NULL, "create %s", path);
    if (f == NULL) return;
    fputs("{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 2,"
          " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"intermediate_size\": 16,"
          " \"vocab_size\": 32, \"max_position_embeddings\": 64}\n",
          f);
    fclose(f);
    char *fits[] = { "--model", dir, "--gpus", "1", "--gpu-mem", "80" };
    char *tiny[] = { "--model", path, "--gpus", "1", "--gpu-mem", "0.5" };
    EXPECT(e2w_plan_main(6, fits, err, sizeof err) == 0, "small config.json on 80 GB: %s", err);
    EXPECT(e2w_plan_main(6, tiny, err, sizeof err) == 1, "0.5 GB is below the runtime reserve");
    char missing[80];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    char *bad[] = { "--model", missing, "--gpus", "1", "--gpu-mem", "80" };
    EXPECT(e2w_plan_main(6, bad, err, sizeof err) == 2, "missing config: %s", err);
    remove(path);
    rmdir(dir);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    EXPECT(f != NULL, "create %s", path);
    if (f == NULL) return;
    fputs(text, f);
    fclose(f);
}

/* The planner's own config.json reader (e2d has no checkpoint code): the
 * fields a plan needs, the defaults, and one line naming a bad field. */
static void case_config_read(void) {
    char dir[] = "/tmp/e2-plan-XXXXXX", path[64], err[512] = "";
    EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "{\"model_type\": \"mistral\", \"hidden_size\": 8, \"num_hidden_layers\": 2,"
                     " \"num_attention_heads\": 2, \"intermediate_size\": 16, \"vocab_size\": 32,"
                     " \"tie_word_embeddings\": true, \"secret_key\": \"do-not-echo\"}\n");
    E2__V1__LlamaConfig c;
    EXPECT(e2_plan_config_read(dir, &c, err, sizeof err) == 0, "%s", err);
    EXPECT(c.hidden_size == 8 && c.num_hidden_layers == 2 && c.num_attention_heads == 2 &&
               c.intermediate_size == 16 && c.vocab_size == 32,
           "fields %u %u %u %u %u", c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
           c.intermediate_size, c.vocab_size);
    EXPECT(c.has_num_key_value_heads && c.num_key_value_heads == 2,
           "kv heads default to the heads: %u", c.num_key_value_heads);
    EXPECT(c.has_tie_word_embeddings && c.tie_word_embeddings, "tied");
    write_file(path, "{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 2,"
                     " \"num_attention_heads\": 2, \"intermediate_size\": \"do-not-echo\", "
                     "\"vocab_size\": 32}\n");
    EXPECT(e2_plan_config_read(path, &c, err, sizeof err) < 0, "string intermediate_size accepted");
    EXPECT(strstr(err, "intermediate_size") && !strstr(err, "do-not-echo"),
           "names the field only: %s", err);
    write_file(path, "{\"model_type\": \"gpt2\", \"hidden_size\": 8}\n");
    EXPECT(e2_plan_config_read(dir, &c, err, sizeof err) < 0 && strstr(err, "model_type"),
           "gpt2: %s", err);
    write_file(path, "{\"model_type\": \"llama\", \"hidden_size\": 8}\n");
    EXPECT(e2_plan_config_read(dir, &c, err, sizeof err) < 0 && strstr(err, "num_hidden_layers"),
           "missing field: %s", err);
    remove(path);
    rmdir(dir);
}

/* e2d's check of a job whose model is model.hf_dir: the same plan as from
 * model.config. */
static void case_check_job_hf_dir(void) {
    char dir[] = "/tmp/e2-plan-XXXXXX", path[64], err[512] = "";
    EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(
        path,
        "{\"model_type\": \"llama\", \"hidden_size\": 4096, \"num_hidden_layers\": 32,"
        " \"num_attention_heads\": 32, \"intermediate_size\": 11008, \"vocab_size\": 32000}\n");
    E2__V1__ModelSpec model = E2__V1__MODEL_SPEC__INIT;
    E2__V1__TrainSpec train = E2__V1__TRAIN_SPEC__INIT;
    E2__V1__JobSpec spec = E2__V1__JOB_SPEC__INIT;
    model.hf_dir = dir;
    train.has_recompute = 1, train.recompute = 1;
    spec.model = &model, spec.train = &train, spec.device = "cuda";
    spec.has_num_workers = 1, spec.num_workers = 8;
    /* Llama-2-7B: 12 bytes x 6.74 B of optimizer state alone exceed 80 GB. */
    EXPECT(e2w_plan_check_job(&spec, 80, err, sizeof err) == -1, "7B without ZeRO-1 on 80 GB");
    EXPECT(strstr(err, "optimizer 80.86") != NULL, "refusal with the numbers: %s", err);
    EXPECT(e2w_plan_check_job(&spec, 200, err, sizeof err) == 0, "7B on 200 GB: %s", err);
    remove(path);
    rmdir(dir);
}

int main(int argc, char **argv) {
    static const expect_case cases[] = {
        { "hand_counts", case_hand_counts },
        { "zero1_shards", case_zero1_shards },
        { "llama2_7b_params", case_llama2_7b_params },
        { "acts_match_model", case_acts_match_model },
        { "fits_boundary", case_fits_boundary },
        { "bad_config", case_bad_config },
        { "check_job", case_check_job },
        { "cli_status", case_cli_status },
        { "cli_config_file", case_cli_config_file },
        { "config_read", case_config_read },
        { "check_job_hf_dir", case_check_job_hf_dir },
    };
    return expect_main("test_plan", cases, sizeof cases / sizeof cases[0], argc, argv);
}
