/* st_tool.c -- test helper that exposes the safetensors reader and writer
 * to st_crosscheck.py, an independent implementation of the format in
 * Python (standard library only):
 *
 *   st_tool write <spec.json> <dir> <max_shard_bytes>
 *       spec: {"tensors": [{"name", "dtype": "F32"|"BF16", "shape": [...],
 *              "bits": [fp32 bit patterns as integers]}]}
 *   st_tool dump <checkpoint>
 *       prints {"<name>": {"dtype", "shape", "bits": [fp32 bit patterns]}}
 *
 * Exit status 0 on success; errors go to stderr as one line. */
#include "base.h"
#include "safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tool_write(const char *spec, const char *dir, uint64_t max) {
    json_error_t je;
    json_t *root = json_load_file(spec, 0, &je);
    json_t *ts = json_object_get(root, "tensors");
    if (!json_is_array(ts)) {
        fprintf(stderr, "st_tool: %s: no \"tensors\" array\n", spec);
        json_decref(root);
        return 1;
    }
    size_t n = json_array_size(ts);
    e2w_st_out *out = calloc(n ? n : 1, sizeof *out);
    float **data = calloc(n ? n : 1, sizeof *data);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(ts, i);
        json_t *shape = json_object_get(t, "shape");
        json_t *bits = json_object_get(t, "bits");
        out[i].name = json_string_value(json_object_get(t, "name"));
        out[i].dtype = strcmp(json_string_value(json_object_get(t, "dtype")), "BF16") == 0
                           ? E2W_DT_BF16
                           : E2W_DT_F32;
        out[i].ndim = (int)json_array_size(shape);
        for (int d = 0; d < out[i].ndim; d++)
            out[i].shape[d] = json_integer_value(json_array_get(shape, (size_t)d));
        size_t m = json_array_size(bits);
        data[i] = malloc((m ? m : 1) * sizeof(float));
        for (size_t k = 0; k < m; k++) {
            uint32_t u = (uint32_t)json_integer_value(json_array_get(bits, k));
            memcpy(&data[i][k], &u, 4);
        }
        out[i].data = data[i];
    }
    char err[E2_ERRLEN];
    int rc = e2w_st_write_dir(dir, out, n, max, NULL, err, sizeof err);
    if (rc < 0) fprintf(stderr, "st_tool: %s\n", err);
    for (size_t i = 0; i < n; i++) free(data[i]);
    free(data);
    free(out);
    json_decref(root);
    return rc < 0;
}

static int tool_dump(const char *path) {
    char err[E2_ERRLEN];
    e2w_st *st;
    if (e2w_st_open(&st, path, err, sizeof err) < 0) {
        fprintf(stderr, "st_tool: %s\n", err);
        return 1;
    }
    json_t *root = json_object();
    int rc = 0;
    for (size_t i = 0; i < e2w_st_count(st) && rc == 0; i++) {
        const e2w_st_tensor_info *x = e2w_st_tensor(st, i);
        float *v = malloc((x->numel ? x->numel : 1) * sizeof *v);
        rc = e2w_st_read_f32(st, x->name, x->ndim, x->shape, v, err, sizeof err);
        json_t *shape = json_array(), *bits = json_array();
        for (int d = 0; d < x->ndim; d++) json_array_append_new(shape, json_integer(x->shape[d]));
        for (uint64_t k = 0; k < x->numel; k++) {
            uint32_t u;
            memcpy(&u, &v[k], 4);
            json_array_append_new(bits, json_integer(u));
        }
        json_object_set_new(root, x->name,
                            json_pack("{s:s, s:o, s:o}", "dtype", e2w_dtype_name(x->dtype), "shape",
                                      shape, "bits", bits));
        free(v);
    }
    if (rc < 0)
        fprintf(stderr, "st_tool: %s\n", err);
    else
        json_dumpf(root, stdout, JSON_COMPACT);
    json_decref(root);
    e2w_st_close(st);
    return rc < 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "write") == 0)
        return tool_write(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "dump") == 0) return tool_dump(argv[2]);
    fprintf(stderr, "usage: st_tool write <spec.json> <dir> <max_shard_bytes> | "
                    "st_tool dump <checkpoint>\n");
    return 2;
}
