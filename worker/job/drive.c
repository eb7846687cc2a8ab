/* drive.c -- one rank's run once the trainer exists (job.h): resume or
 * evaluate the starting model, train, evaluate the trained model. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "base.h"
#include "job.h"

int e2w_job_verify_manifest(const char *dir, char *err, size_t errlen) {
    char path[4200];
    json_error_t je;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_t *m = json_load_file(path, 0, &je);
    json_t *files = m ? json_object_get(m, "files") : NULL;
    size_t i;
    json_t *f;
    int rc = 0;
    if (!json_is_array(files)) {
        json_decref(m);
        return e2_errf(err, errlen, "%s: not a committed checkpoint (%s)", dir,
                       m ? "manifest.json lists no files" : je.text);
    }
    json_array_foreach(files, i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *want = json_string_value(json_object_get(f, "sha256"));
        json_int_t size = json_integer_value(json_object_get(f, "size"));
        uint8_t d[E2_SHA256_LEN];
        char hex[E2_SHA256_HEXLEN];
        uint64_t got = 0;
        if (!name || !want || strchr(name, '/')) {
            rc = e2_errf(err, errlen, "%s: manifest.json entry %zu is malformed", dir, i);
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if ((rc = e2_sha256_file(path, d, &got, err, errlen)) < 0) break;
        e2_sha256_hex(d, hex);
        if (got != (uint64_t)size || strcmp(hex, want)) {
            rc = e2_errf(err, errlen,
                         "%s: %s does not match its checksum in manifest.json "
                         "(size %llu, want %lld): the checkpoint is damaged",
                         dir, name, (unsigned long long)got, (long long)size);
            break;
        }
    }
    json_decref(m);
    return rc;
}

static void drive_say(const e2w_job_drive_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void drive_say(const e2w_job_drive_opts *o, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    if (!o->say) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->say(o->ud, line);
}

/* Evaluates at every eval window (e2w_eval_spec), with one log line per
 * row when asked. */
static int drive_evaluate(e2w_train *t, const e2w_job_drive_opts *o, const char *tag,
                          e2w_eval_results *ev, char *err, size_t errlen) {
    int first = ev->n;
    if (e2w_eval_spec(e2w_train_model(t), e2w_train_spec(t), tag, ev, err, errlen) < 0)
        return E2_ERR;
    for (int i = first; o->log_eval_rows && i < ev->n; i++) {
        const e2w_eval_row *w = &ev->rows[i];
        drive_say(o,
                  "eval %s window %d scale %g: nll %.4f perplexity %.4f (%llu tokens) passkey "
                  "%d/%d",
                  w->tag, w->window, w->scale, w->nll, w->ppl, (unsigned long long)w->tokens,
                  w->passkey_correct, w->passkey_trials);
    }
    return 0;
}

e2w_job_fail e2w_job_fail_of(int rc) {
    switch (rc) {
    case E2W_TRAIN_EDATA:
    case E2W_TRAIN_ENOMEM: return E2W_JOB_FAIL_USER;
    case E2W_TRAIN_ENAN: return E2W_JOB_FAIL_NAN;
    default: return rc < 0 ? E2W_JOB_FAIL_INFRA : E2W_JOB_FAIL_NONE;
    }
}

int e2w_job_drive(e2w_train *t, const e2w_job_drive_opts *o, e2w_eval_results *ev,
                  e2w_job_fail *fail, char *err, size_t errlen) {
    const E2__V1__JobSpec *spec = e2w_train_spec(t);
    int own = 0;
    const char *from = e2w_job_resume_from(o->own_ckpt, spec, &own);
    *fail = E2W_JOB_FAIL_NONE;
    if (from) {
        /* The job's own checkpoint failing is a fault of the storage; a
         * resume_from the user named that fails is theirs. */
        if ((o->verify_manifest && e2w_job_verify_manifest(from, err, errlen) < 0) ||
            e2w_train_resume(t, from, err, errlen) < 0) {
            *fail = own ? E2W_JOB_FAIL_INFRA : E2W_JOB_FAIL_USER;
            return E2_ERR;
        }
        if (o->resumed) o->resumed(o->ud, e2w_train_step(t));
        drive_say(o, "resumed from %s (step %d)", from, e2w_train_step(t));
    } else if (o->evaluate && spec->eval && spec->eval->eval_base) {
        drive_say(o, "evaluating the starting model");
        if (drive_evaluate(t, o, "base", ev, err, errlen) < 0) {
            *fail = E2W_JOB_FAIL_INFRA;
            return E2_ERR;
        }
    }
    if (o->before_train) o->before_train(o->ud);
    int r = e2w_train_run(t, err, errlen);
    if (r < 0) {
        *fail = e2w_job_fail_of(r);
        return E2_ERR;
    }
    if (r == 1) return 1;
    drive_say(o, "training done at step %d%s", e2w_train_step(t),
              o->evaluate ? "; evaluating" : "");
    if (o->evaluate && drive_evaluate(t, o, "final", ev, err, errlen) < 0) {
        *fail = E2W_JOB_FAIL_INFRA;
        return E2_ERR;
    }
    return 0;
}
