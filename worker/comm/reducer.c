/* reducer.c -- buckets of gradient ranges summed over the ranks on a thread
 * of their own (reducer.h): a FIFO of buckets between the trainer's thread
 * and the reducer's, a staging buffer for packing small ranges on host
 * engines. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "reducer.h"

typedef struct bucket {
    struct bucket *next;
    void *mark; /* device engines: the compute stream at push */
    int n;
    e2w_reducer_range r[];
} bucket;

struct e2w_reducer {
    e2w_comm *comm;
    char *base;
    size_t esz;
    e2w_comm_dtype dtype;
    void *stream; /* device engines: the compute stream */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* work queued, work done, quit */
    bucket *head, *tail; /* waiting buckets, oldest first */
    int busy;            /* the thread is summing a bucket */
    int quit;
    int rc; /* first failure, sticky */
    char err[E2_ERRLEN];
    char *stage; /* host engines: packed bucket */
    size_t stage_cap;
    double busy_s;
};

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t dtype_size(e2w_comm_dtype d) {
    return d == E2W_COMM_F64 ? 8 : d == E2W_COMM_BF16 ? 2 : 4;
}

/* Sums one bucket over the ranks: packed into the staging buffer when it has
 * several ranges on the host and fits, else range by range in place. */
static int reduce_bucket(e2w_reducer *r, const bucket *b, char *err, size_t errlen) {
    size_t total = 0;
    for (int i = 0; i < b->n; i++) total += b->r[i].n;
    size_t bytes = total * r->esz;
    if (!r->stream && b->n > 1 && bytes <= E2W_REDUCER_STAGE_BYTES) {
        if (bytes > r->stage_cap) {
            char *s = realloc(r->stage, bytes);
            if (!s) return e2_errf(err, errlen, "reducer: out of memory (%zu bytes)", bytes);
            r->stage = s;
            r->stage_cap = bytes;
        }
        char *p = r->stage;
        for (int i = 0; i < b->n; i++) {
            memcpy(p, r->base + b->r[i].offset * r->esz, b->r[i].n * r->esz);
            p += b->r[i].n * r->esz;
        }
        int rc = e2w_comm_allreduce(r->comm, r->stage, total, r->dtype, E2W_COMM_SUM, err, errlen);
        if (rc < 0) return rc;
        p = r->stage;
        for (int i = 0; i < b->n; i++) {
            memcpy(r->base + b->r[i].offset * r->esz, p, b->r[i].n * r->esz);
            p += b->r[i].n * r->esz;
        }
        return 0;
    }
    /* Device engines: one group of in-place all-reduces, ordered after the
     * kernels queued before this bucket's push only (its mark). */
    e2w_comm_span sp[16];
    for (int i0 = 0; i0 < b->n; i0 += 16) {
        int n = b->n - i0 < 16 ? b->n - i0 : 16;
        for (int i = 0; i < n; i++) {
            sp[i].buf = r->base + b->r[i0 + i].offset * r->esz;
            sp[i].n = b->r[i0 + i].n;
        }
        int rc = e2w_comm_allreduce_spans(r->comm, i0 == 0 ? b->mark : NULL, sp, n, r->dtype,
                                          E2W_COMM_SUM, err, errlen);
        if (rc < 0) return rc;
    }
    return 0;
}

static void bucket_free(e2w_reducer *r, bucket *b) {
    e2w_comm_mark_free(r->comm, b->mark);
    free(b);
}

/* The reducer's thread: takes the oldest bucket, sums it, repeats. After a
 * failure the remaining buckets are dropped (the communicator is broken). */
static void *reducer_main(void *arg) {
    e2w_reducer *r = arg;
    char err[E2_ERRLEN];
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->head && !r->quit) pthread_cond_wait(&r->cv, &r->mu);
        if (r->quit) break;
        bucket *b = r->head;
        r->head = b->next;
        if (!r->head) r->tail = NULL;
        int failed = r->rc < 0;
        r->busy = 1;
        pthread_mutex_unlock(&r->mu);
        int rc = 0;
        double t0 = mono_s();
        if (!failed) rc = reduce_bucket(r, b, err, sizeof err);
        double dt = mono_s() - t0;
        bucket_free(r, b);
        pthread_mutex_lock(&r->mu);
        r->busy_s += dt;
        if (rc < 0 && r->rc == 0) {
            r->rc = rc;
            memcpy(r->err, err, sizeof err);
        }
        r->busy = 0;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int e2w_reducer_create(e2w_reducer **out, e2w_comm *comm, void *base, e2w_comm_dtype dtype,
                       void *stream, char *err, size_t errlen) {
    *out = NULL;
    e2w_reducer *r = calloc(1, sizeof *r);
    if (!r) return e2_errf(err, errlen, "reducer: out of memory");
    r->comm = comm;
    r->base = base;
    r->dtype = dtype;
    r->esz = dtype_size(dtype);
    r->stream = stream;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int rc = pthread_create(&r->thread, NULL, reducer_main, r);
    if (rc != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return e2_errf(err, errlen, "reducer: pthread_create: %s", strerror(rc));
    }
    *out = r;
    return 0;
}

void e2w_reducer_push(e2w_reducer *r, const e2w_reducer_range *ranges, int nranges) {
    char err[E2_ERRLEN];
    int rc = 0;
    if (nranges <= 0) return;
    bucket *b = malloc(sizeof *b + (size_t)nranges * sizeof *ranges);
    if (b) {
        b->next = NULL;
        b->n = nranges;
        memcpy(b->r, ranges, (size_t)nranges * sizeof *ranges);
        /* The kernels queued so far wrote this bucket: its all-reduces wait
         * for them (and for nothing queued later). */
        b->mark = NULL;
        if (r->stream) rc = e2w_comm_mark(r->comm, r->stream, &b->mark, err, sizeof err);
        if (rc < 0) {
            free(b);
            b = NULL;
        }
    } else {
        rc = e2_errf(err, sizeof err, "reducer: out of memory");
    }
    pthread_mutex_lock(&r->mu);
    if (b) {
        if (r->tail)
            r->tail->next = b;
        else
            r->head = b;
        r->tail = b;
    } else if (r->rc == 0) {
        r->rc = rc;
        memcpy(r->err, err, sizeof err);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

int e2w_reducer_wait(e2w_reducer *r, double *waited_s, char *err, size_t errlen) {
    double t0 = mono_s();
    pthread_mutex_lock(&r->mu);
    while (r->head || r->busy) pthread_cond_wait(&r->cv, &r->mu);
    int rc = r->rc;
    if (rc < 0) e2_errf(err, errlen, "%s", r->err);
    pthread_mutex_unlock(&r->mu);
    if (waited_s) *waited_s += mono_s() - t0;
    return rc;
}

double e2w_reducer_busy_seconds(e2w_reducer *r) {
    pthread_mutex_lock(&r->mu);
    double s = r->busy_s;
    pthread_mutex_unlock(&r->mu);
    return s;
}

void e2w_reducer_free(e2w_reducer *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->quit = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    while (r->head) {
        bucket *b = r->head;
        r->head = b->next;
        bucket_free(r, b);
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->stage);
    free(r);
}
