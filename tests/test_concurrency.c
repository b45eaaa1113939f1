/* The threading contract of docs/conventions.md under load: many threads on one const scorer of
 * every kind at once, on one const bank, independent training steps on distinct banks while
 * others score, protood_last_error kept per thread, and the counted section that holds OpenBLAS's
 * global thread count at 1 while scoring runs. Every thread compares what it gets with the
 * sequential result, bit for bit.
 *
 * Worker threads never call ck_assert (Check's failure path unwinds the calling thread only):
 * each records its first mismatch, and the main thread reports it after the join. The suite is
 * also what the ThreadSanitizer build (build/tsan, scripts/test.sh) runs to find data races that
 * happen to give the right values. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(PROTOOD_BLAS_OPENBLAS)
#include <cblas.h>
#endif

#include "blas_threads.h"
#include "testutil.h"

enum { T = 8, ROUNDS = 4 };

static double uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* n rows of dim d around the centre of their class (labels y, C classes), or uniform in [-1, 1]
 * with y NULL. */
static float *make_rows(uint64_t seed, int64_t n, int64_t d, int64_t C, int32_t *y)
{
    uint64_t cs = 7;
    float *centre = malloc((size_t)((C > 0 ? C : 1) * d) * sizeof *centre);
    for (int64_t k = 0; k < C * d; k++)
        centre[k] = (float)(2.0 * uniform(&cs) - 1.0);
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = (int32_t)(i % (C > 0 ? C : 1));
        if (y)
            y[i] = c;
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = (float)((y ? centre[c * d + j] : 0.0f) + (2.0 * uniform(&seed) - 1.0) * (y ? 0.4 : 1.0));
    }
    free(centre);
    return x;
}

/* What a worker found wrong first ("" while everything matched). */
typedef struct verdict {
    char text[320];
} verdict;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void mismatch(verdict *v, const char *fmt, ...)
{
    if (v->text[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t th[16];
    ck_assert_int_le(n, 16);
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, fn, (char *)args + (size_t)t * arg_size), 0);
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(pthread_join(th[t], NULL), 0);
}

/* ---- one const scorer of every kind, many threads ------------------------------------------ */

enum { KINDS = 4 };

typedef struct scorer_set {
    protood_scorer *s[KINDS];
    unsigned char *bytes[KINDS];   /* to_buffer of each, taken before the threads start */
    size_t size[KINDS];
    int64_t m[T];
    float *q[T];
    float *want[KINDS][T];         /* the sequential scores */
    const char *dir;
    pthread_barrier_t go;
} scorer_set;

typedef struct scorer_job {
    scorer_set *set;
    int t;
    verdict v;
} scorer_job;

typedef struct stream_src {
    const float *q;
    int64_t dim;
} stream_src;

static int32_t pull_rows(void *user, int64_t first, int64_t count, float *rows_out, int32_t *labels_out)
{
    const stream_src *src = user;
    (void)labels_out;
    memcpy(rows_out, src->q + first * src->dim, (size_t)(count * src->dim) * sizeof(float));
    return 0;
}

static void *score_everything(void *arg)
{
    scorer_job *j = arg;
    scorer_set *set = j->set;
    const int t = j->t;
    const int64_t m = set->m[t];
    float *got = malloc((size_t)m * sizeof *got);
    unsigned char *buf = malloc(set->size[0] + set->size[1] + set->size[2] + set->size[3]);
    pthread_barrier_wait(&set->go);
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < KINDS; k++) {
            /* threads start on different kinds, so every kind is scored by several at once */
            int kind = (t + r + k) % KINDS;
            const protood_scorer *s = set->s[kind];
            int64_t dim = 0;
            int32_t info_kind = 0, fitted = 0;
            double kk = NAN, norm = NAN;
            memset(got, 0xff, (size_t)m * sizeof *got);
            stream_src src = {set->q[t], 0};
            protood_status st = protood_scorer_info(s, &info_kind, &dim, &fitted);
            src.dim = dim;
            if (st == PROTOOD_OK)
                st = (r + k) % 2 ? protood_scorer_score_stream(s, m, 29, pull_rows, &src, got)
                                 : protood_scorer_score(s, m, set->q[t], got);
            if (st != PROTOOD_OK)
                mismatch(&j->v, "kind %d round %d: status %d (%s)", kind + 1, r, st, protood_last_error());
            else if (memcmp(got, set->want[kind][t], (size_t)m * sizeof *got) != 0)
                mismatch(&j->v, "kind %d round %d: scores differ from the sequential run", kind + 1, r);
            if (info_kind != kind + 1 || !fitted)
                mismatch(&j->v, "kind %d: info says kind %d, fitted %d", kind + 1, info_kind, fitted);
            if (protood_scorer_get_param(s, PROTOOD_SCORER_K, &kk) != PROTOOD_OK ||
                protood_scorer_get_param(s, PROTOOD_SCORER_NORMALIZE, &norm) != PROTOOD_OK ||
                kk != (kind == 0 ? 7.0 : 50.0) || norm != 1.0)
                mismatch(&j->v, "kind %d: parameters read back as k = %g, normalize = %g", kind + 1, kk, norm);
            size_t size = 0;
            if (protood_scorer_to_buffer(s, buf, set->size[kind], &size) != PROTOOD_OK || size != set->size[kind] ||
                memcmp(buf, set->bytes[kind], size) != 0)
                mismatch(&j->v, "kind %d round %d: to_buffer differs (%zu bytes)", kind + 1, r, size);
        }
    /* save (atomic, each thread its own file), load, and the copy scores the same bits */
    int kind = t % KINDS;
    char name[32];
    snprintf(name, sizeof name, "scorer-%d.bin", t);
    char *path = tu_path(set->dir, name);
    protood_scorer *loaded = NULL;
    if (protood_scorer_save(set->s[kind], path) != PROTOOD_OK || protood_scorer_load(&loaded, path) != PROTOOD_OK)
        mismatch(&j->v, "save/load: %s", protood_last_error());
    else if (protood_scorer_score(loaded, m, set->q[t], got) != PROTOOD_OK ||
             memcmp(got, set->want[kind][t], (size_t)m * sizeof *got) != 0)
        mismatch(&j->v, "kind %d: the loaded copy scores differently", kind + 1);
    protood_scorer_free(loaded);
    free(path);
    free(buf);
    free(got);
    return NULL;
}

START_TEST(one_scorer_of_each_kind_scored_by_many_threads)
{
    const int64_t n = 1200, d = 24, C = 8;
    int32_t *y = malloc((size_t)n * sizeof *y);
    float *x = make_rows(1, n, d, C, y);
    scorer_set set;
    memset(&set, 0, sizeof set);
    protood_bank *bank;
    ck_assert_int_eq(protood_bank_create(&bank, C, 3, d), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_from_features(bank, n, x, y, 5), PROTOOD_OK);
    for (int k = 0; k < KINDS; k++) {
        ck_assert_int_eq(protood_scorer_create(&set.s[k], k + 1, d), PROTOOD_OK);
        if (k == 0)
            ck_assert_int_eq(protood_scorer_set_param(set.s[k], PROTOOD_SCORER_K, 7), PROTOOD_OK);
        ck_assert_int_eq(k == 3 ? protood_scorer_fit_bank(set.s[k], bank) : protood_scorer_fit(set.s[k], n, x, y, C),
                         PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_to_buffer(set.s[k], NULL, 0, &set.size[k]), PROTOOD_OK);
        set.bytes[k] = malloc(set.size[k]);
        ck_assert_int_eq(protood_scorer_to_buffer(set.s[k], set.bytes[k], set.size[k], &set.size[k]), PROTOOD_OK);
    }
    for (int t = 0; t < T; t++) {
        set.m[t] = 150 + 37 * t;
        int32_t *yq = malloc((size_t)set.m[t] * sizeof *yq);   /* queries near the class centres */
        set.q[t] = make_rows(100 + (uint64_t)t, set.m[t], d, C, yq);
        free(yq);
        for (int k = 0; k < KINDS; k++) {
            set.want[k][t] = malloc((size_t)set.m[t] * sizeof(float));
            ck_assert_int_eq(protood_scorer_score(set.s[k], set.m[t], set.q[t], set.want[k][t]), PROTOOD_OK);
        }
    }
    char *dir = tu_mkdtemp();
    set.dir = dir;
    ck_assert_int_eq(pthread_barrier_init(&set.go, NULL, T), 0);
    scorer_job jobs[T];
    for (int t = 0; t < T; t++)
        jobs[t] = (scorer_job){&set, t, {""}};
    run_threads(T, score_everything, jobs, sizeof jobs[0]);
    for (int t = 0; t < T; t++)
        ck_assert_msg(jobs[t].v.text[0] == '\0', "thread %d: %s", t, jobs[t].v.text);

    pthread_barrier_destroy(&set.go);
    tu_rmtree(dir);
    free(dir);
    for (int t = 0; t < T; t++) {
        free(set.q[t]);
        for (int k = 0; k < KINDS; k++)
            free(set.want[k][t]);
    }
    for (int k = 0; k < KINDS; k++) {
        protood_scorer_free(set.s[k]);
        free(set.bytes[k]);
    }
    protood_bank_free(bank);
    free(x);
    free(y);
}
END_TEST

/* ---- one const bank, many threads ---------------------------------------------------------- */

typedef struct bank_set {
    const protood_bank *bank;
    unsigned char *bytes;          /* protood_bank_to_buffer before the threads start */
    size_t size;
    float *protos;
    double params[11];
    int64_t n[T];
    float *h[T];
    int32_t *y[T];                 /* NULL for odd threads: unsupervised assignment */
    float *w_want[T];              /* palm_assign */
    float *proto_want[T];          /* a PROTOTYPE scorer fitted to the bank, scoring h[t] */
    float *q_want[T];              /* protood_sinkhorn of w_want[t] taken as scores */
    const char *shared_path;       /* saved by the first half of the threads, loaded by the rest */
    pthread_barrier_t go;
} bank_set;

typedef struct bank_job {
    bank_set *set;
    int t;
    verdict v;
} bank_job;

static void *read_bank(void *arg)
{
    bank_job *j = arg;
    bank_set *set = j->set;
    const protood_bank *b = set->bank;
    const int t = j->t;
    int64_t C = 0, K = 0, D = 0;
    if (protood_bank_shape(b, &C, &K, &D) != PROTOOD_OK)
        mismatch(&j->v, "bank_shape: %s", protood_last_error());
    const int64_t n = set->n[t], P = C * K;
    float *w = malloc((size_t)(n * P) * sizeof *w), *q = malloc((size_t)(n * P) * sizeof *q);
    float *protos = malloc((size_t)(P * D) * sizeof *protos);
    float *scores = malloc((size_t)n * sizeof *scores);
    unsigned char *buf = malloc(set->size);
    protood_scorer *proto = NULL;
    protood_status st = protood_scorer_create(&proto, PROTOOD_SCORER_PROTOTYPE, D);
    pthread_barrier_wait(&set->go);
    for (int r = 0; r < ROUNDS && st == PROTOOD_OK; r++) {
        if ((st = protood_palm_assign(b, n, set->h[t], set->y[t], w)) != PROTOOD_OK ||
            memcmp(w, set->w_want[t], (size_t)(n * P) * sizeof *w) != 0)
            mismatch(&j->v, "round %d: palm_assign differs (status %d)", r, st);
        size_t size = 0;
        if (protood_bank_to_buffer(b, buf, set->size, &size) != PROTOOD_OK || size != set->size ||
            memcmp(buf, set->bytes, size) != 0)
            mismatch(&j->v, "round %d: bank_to_buffer differs", r);
        if (protood_bank_get_prototypes(b, protos) != PROTOOD_OK ||
            memcmp(protos, set->protos, (size_t)(P * D) * sizeof *protos) != 0)
            mismatch(&j->v, "round %d: get_prototypes differs", r);
        for (int32_t key = 1; key <= 10; key++) {
            double v;
            if (protood_bank_get_param(b, key, &v) != PROTOOD_OK || v != set->params[key])
                mismatch(&j->v, "round %d: parameter %d reads %g", r, key, v);
        }
        protood_bank *copy = NULL;
        if (protood_bank_clone(&copy, b) != PROTOOD_OK || protood_bank_to_buffer(copy, buf, set->size, &size) != PROTOOD_OK ||
            memcmp(buf, set->bytes, size) != 0)
            mismatch(&j->v, "round %d: the clone differs", r);
        protood_bank_free(copy);
        if (protood_scorer_fit_bank(proto, b) != PROTOOD_OK ||
            protood_scorer_score(proto, n, set->h[t], scores) != PROTOOD_OK ||
            memcmp(scores, set->proto_want[t], (size_t)n * sizeof *scores) != 0)
            mismatch(&j->v, "round %d: a PROTOTYPE scorer fitted to the bank scores differently", r);
        /* the stateless Sinkhorn, on this thread's assignment weights taken as a score matrix */
        if (protood_sinkhorn(n, P, w, 0.05, 3, q) != PROTOOD_OK ||
            memcmp(q, set->q_want[t], (size_t)(n * P) * sizeof *q) != 0)
            mismatch(&j->v, "round %d: protood_sinkhorn differs", r);
        /* one file replaced again and again by the first half while the second half reads it: a
         * reader sees the previous or the new file, never a partial one */
        if (t < T / 2) {
            if (protood_bank_save(b, set->shared_path) != PROTOOD_OK)
                mismatch(&j->v, "round %d: save: %s", r, protood_last_error());
        } else {
            protood_bank *loaded = NULL;
            if (protood_bank_load(&loaded, set->shared_path) != PROTOOD_OK ||
                protood_bank_to_buffer(loaded, buf, set->size, &size) != PROTOOD_OK || memcmp(buf, set->bytes, size) != 0)
                mismatch(&j->v, "round %d: load while others save: %s", r, protood_last_error());
            protood_bank_free(loaded);
        }
    }
    if (st != PROTOOD_OK)
        mismatch(&j->v, "status %d: %s", st, protood_last_error());
    protood_scorer_free(proto);
    free(buf);
    free(scores);
    free(protos);
    free(q);
    free(w);
    return NULL;
}

START_TEST(one_bank_read_by_many_threads)
{
    const int64_t C = 6, K = 4, D = 16, P = C * K;
    protood_bank *bank;
    ck_assert_int_eq(protood_bank_create(&bank, C, K, D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(bank, PROTOOD_INIT_SPHERE, 3), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(bank, PROTOOD_BANK_TOPK, 2), PROTOOD_OK);
    bank_set set;
    memset(&set, 0, sizeof set);
    set.bank = bank;
    ck_assert_int_eq(protood_bank_to_buffer(bank, NULL, 0, &set.size), PROTOOD_OK);
    set.bytes = malloc(set.size);
    ck_assert_int_eq(protood_bank_to_buffer(bank, set.bytes, set.size, &set.size), PROTOOD_OK);
    set.protos = malloc((size_t)(P * D) * sizeof *set.protos);
    ck_assert_int_eq(protood_bank_get_prototypes(bank, set.protos), PROTOOD_OK);
    for (int32_t key = 1; key <= 10; key++)
        ck_assert_int_eq(protood_bank_get_param(bank, key, &set.params[key]), PROTOOD_OK);
    protood_scorer *proto;
    ck_assert_int_eq(protood_scorer_create(&proto, PROTOOD_SCORER_PROTOTYPE, D), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit_bank(proto, bank), PROTOOD_OK);
    for (int t = 0; t < T; t++) {
        int64_t n = set.n[t] = 40 + 7 * t;
        int32_t *y = malloc((size_t)n * sizeof *y);
        set.h[t] = make_rows(200 + (uint64_t)t, n, D, C, y);
        if (t % 2) {
            free(y);
            y = NULL;
        }
        set.y[t] = y;
        set.w_want[t] = malloc((size_t)(n * P) * sizeof(float));
        ck_assert_int_eq(protood_palm_assign(bank, n, set.h[t], y, set.w_want[t]), PROTOOD_OK);
        set.q_want[t] = malloc((size_t)(n * P) * sizeof(float));
        ck_assert_int_eq(protood_sinkhorn(n, P, set.w_want[t], 0.05, 3, set.q_want[t]), PROTOOD_OK);
        set.proto_want[t] = malloc((size_t)n * sizeof(float));
        ck_assert_int_eq(protood_scorer_score(proto, n, set.h[t], set.proto_want[t]), PROTOOD_OK);
    }
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "bank.bin");
    set.shared_path = path;
    ck_assert_int_eq(protood_bank_save(bank, path), PROTOOD_OK);
    ck_assert_int_eq(pthread_barrier_init(&set.go, NULL, T), 0);
    bank_job jobs[T];
    for (int t = 0; t < T; t++)
        jobs[t] = (bank_job){&set, t, {""}};
    run_threads(T, read_bank, jobs, sizeof jobs[0]);
    for (int t = 0; t < T; t++)
        ck_assert_msg(jobs[t].v.text[0] == '\0', "thread %d: %s", t, jobs[t].v.text);
    /* every temporary file of the concurrent saves was renamed or removed: only the bank is left */
    ck_assert_int_eq(count_entries(dir), 1);

    pthread_barrier_destroy(&set.go);
    tu_rmtree(dir);
    free(path);
    free(dir);
    for (int t = 0; t < T; t++) {
        free(set.h[t]);
        free(set.y[t]);
        free(set.w_want[t]);
        free(set.q_want[t]);
        free(set.proto_want[t]);
    }
    protood_scorer_free(proto);
    free(set.bytes);
    free(set.protos);
    protood_bank_free(bank);
}
END_TEST

/* ---- training steps on distinct banks while other threads score ----------------------------- */

enum { STEPS = 3, STEP_ROWS = 96 };

typedef struct step_job {
    protood_bank *bank;            /* this thread's own bank */
    int cider;
    const float *h;
    const int32_t *y;
    double losses[STEPS][3];
    float *grad;                   /* the last step's gradient */
    float *protos;                 /* the bank after the steps */
    /* scoring threads instead: */
    const protood_scorer *scorer;
    int64_t m;
    const float *q;
    const float *want;
    pthread_barrier_t *go;
    verdict v;
} step_job;

static void *train_or_score(void *arg)
{
    step_job *j = arg;
    if (j->go)
        pthread_barrier_wait(j->go);
    if (j->scorer) {
        float *got = malloc((size_t)j->m * sizeof *got);
        for (int r = 0; r < 3 * ROUNDS; r++)
            if (protood_scorer_score(j->scorer, j->m, j->q, got) != PROTOOD_OK ||
                memcmp(got, j->want, (size_t)j->m * sizeof *got) != 0)
                mismatch(&j->v, "round %d: scores differ from the sequential run", r);
        free(got);
        return NULL;
    }
    for (int s = 0; s < STEPS; s++) {
        protood_status st = j->cider ? protood_cider_step(j->bank, STEP_ROWS, j->h, j->y, j->losses[s], j->grad)
                                     : protood_palm_step(j->bank, STEP_ROWS, j->h, j->y, j->losses[s], j->grad);
        if (st != PROTOOD_OK)
            mismatch(&j->v, "step %d: %s", s, protood_last_error());
    }
    if (protood_bank_get_prototypes(j->bank, j->protos) != PROTOOD_OK)
        mismatch(&j->v, "get_prototypes: %s", protood_last_error());
    return NULL;
}

/* Each training thread owns its bank (distinct handles may be used freely); two more threads
 * score meanwhile, so the scorer's counted section switches OpenBLAS to one thread while the
 * steps' products run. The steps must still give the sequential bits: OpenBLAS and BLIS split a
 * product over the rows and columns of its result, never over the inner dimension, so every
 * element is summed in the same order whatever the thread count. */
START_TEST(steps_on_distinct_banks_while_others_score)
{
    const int64_t C = 5, D = 16;
    enum { TRAIN = T - 2 };
    step_job seq[TRAIN], par[T];
    memset(seq, 0, sizeof seq);
    memset(par, 0, sizeof par);
    pthread_barrier_t go;
    ck_assert_int_eq(pthread_barrier_init(&go, NULL, T), 0);
    int32_t *y[TRAIN];
    float *h[TRAIN];
    for (int t = 0; t < TRAIN; t++) {
        int cider = t % 2;
        y[t] = malloc(STEP_ROWS * sizeof(int32_t));
        h[t] = make_rows(300 + (uint64_t)t, STEP_ROWS, D, C, y[t]);
        for (int pass = 0; pass < 2; pass++) {
            step_job *j = pass ? &par[t] : &seq[t];
            ck_assert_int_eq(protood_bank_create(&j->bank, C, cider ? 1 : 3, D), PROTOOD_OK);
            ck_assert_int_eq(protood_bank_init_random(j->bank, PROTOOD_INIT_SPHERE, 40 + (uint64_t)t), PROTOOD_OK);
            ck_assert_int_eq(protood_bank_set_param(j->bank, PROTOOD_BANK_MOMENTUM, cider ? 0.5 : 0.9), PROTOOD_OK);
            j->cider = cider;
            j->h = h[t];
            j->y = y[t];
            j->grad = malloc(STEP_ROWS * D * sizeof(float));
            j->protos = malloc((size_t)(C * (cider ? 1 : 3) * D) * sizeof(float));
            j->go = pass ? &go : NULL;
        }
        train_or_score(&seq[t]);
        ck_assert_msg(seq[t].v.text[0] == '\0', "sequential thread %d: %s", t, seq[t].v.text);
    }
    const int64_t n = 2000, m = 600;
    float *x = make_rows(9, n, D, 0, NULL), *q = make_rows(10, m, D, 0, NULL), *want = malloc(m * sizeof *want);
    protood_scorer *knn;
    ck_assert_int_eq(protood_scorer_create(&knn, PROTOOD_SCORER_KNN, D), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(knn, n, x, NULL, 0), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_score(knn, m, q, want), PROTOOD_OK);
    for (int t = TRAIN; t < T; t++)
        par[t] = (step_job){.scorer = knn, .m = m, .q = q, .want = want, .go = &go};

    run_threads(T, train_or_score, par, sizeof par[0]);
    for (int t = 0; t < T; t++)
        ck_assert_msg(par[t].v.text[0] == '\0', "thread %d: %s", t, par[t].v.text);
    for (int t = 0; t < TRAIN; t++) {
        int64_t P = C * (par[t].cider ? 1 : 3);
        ck_assert_msg(memcmp(par[t].losses, seq[t].losses, sizeof seq[t].losses) == 0, "thread %d: losses differ", t);
        ck_assert_msg(memcmp(par[t].grad, seq[t].grad, STEP_ROWS * D * sizeof(float)) == 0, "thread %d: gradient differs",
                      t);
        ck_assert_msg(memcmp(par[t].protos, seq[t].protos, (size_t)(P * D) * sizeof(float)) == 0,
                      "thread %d: prototypes differ", t);
        for (int pass = 0; pass < 2; pass++) {
            step_job *j = pass ? &par[t] : &seq[t];
            protood_bank_free(j->bank);
            free(j->grad);
            free(j->protos);
        }
        free(h[t]);
        free(y[t]);
    }
    pthread_barrier_destroy(&go);
    protood_scorer_free(knn);
    free(x);
    free(q);
    free(want);
}
END_TEST

/* ---- protood_last_error per thread ------------------------------------------------------- */

enum { ERROR_ROUNDS = 50 };

typedef struct error_job {
    int t;
    pthread_barrier_t *bar;
    verdict v;
} error_job;

/* The first failure of thread t in round r, and its second one (odd threads only). The values
 * carry t and r, so a message from any other thread or round cannot pass for the expected one. */
static void fail_first(int t, int r, char *expect, size_t size)
{
    protood_bank *b = NULL;
    protood_bank_create(&b, 1, 1, -(t * 1000 + r + 1));
    snprintf(expect, size, "protood_bank_create: dim = %d, must be >= 1", -(t * 1000 + r + 1));
}

static void fail_second(int t, int r, char *expect, size_t size)
{
    protood_set_threads(-(t * 1000 + r + 1));
    snprintf(expect, size, "protood_set_threads: n = %d, must be >= 1", -(t * 1000 + r + 1));
}

static void *fail_in_turns(void *arg)
{
    error_job *j = arg;
    const int t = j->t, odd = t % 2, never = t == T - 1;   /* the last thread never fails */
    char first[128] = "", second[128];
    const float in[] = {1, 2}, out[] = {0};
    double auc;
    for (int r = 0; r < ERROR_ROUNDS; r++) {
        /* 1: everyone fails at once (or, the last thread, succeeds), each with its own message */
        if (!never)
            fail_first(t, r, first, sizeof first);
        else if (protood_auroc(2, in, 1, out, &auc) != PROTOOD_OK)
            mismatch(&j->v, "auroc failed");
        const char *mine = protood_last_error();
        if (strcmp(mine, first) != 0)
            mismatch(&j->v, "round %d: after my failure I read \"%s\", expected \"%s\"", r, mine, first);
        pthread_barrier_wait(j->bar);
        /* 2: odd threads fail again while even ones keep reading the text they were given, which
         * must stay valid and unchanged; and a success must not clear it */
        if (odd && !never) {
            fail_second(t, r, second, sizeof second);
        } else {
            for (int k = 0; k < 100; k++)
                if (strcmp(mine, first) != 0)
                    mismatch(&j->v, "round %d: my message changed to \"%s\" while others failed", r, mine);
            if (protood_auroc(2, in, 1, out, &auc) != PROTOOD_OK || strcmp(protood_last_error(), first) != 0)
                mismatch(&j->v, "round %d: a successful call changed my message to \"%s\"", r, protood_last_error());
        }
        pthread_barrier_wait(j->bar);
        /* 3: everyone reads back the message of its own last failure */
        const char *want = odd && !never ? second : first;
        if (strcmp(protood_last_error(), want) != 0)
            mismatch(&j->v, "round %d: I read \"%s\", expected \"%s\"", r, protood_last_error(), want);
        pthread_barrier_wait(j->bar);
    }
    return NULL;
}

START_TEST(last_error_belongs_to_the_thread)
{
    pthread_barrier_t bar;
    ck_assert_int_eq(pthread_barrier_init(&bar, NULL, T), 0);
    error_job jobs[T];
    for (int t = 0; t < T; t++)
        jobs[t] = (error_job){t, &bar, {""}};
    run_threads(T, fail_in_turns, jobs, sizeof jobs[0]);
    for (int t = 0; t < T; t++)
        ck_assert_msg(jobs[t].v.text[0] == '\0', "thread %d: %s", t, jobs[t].v.text);
    pthread_barrier_destroy(&bar);
}
END_TEST

/* ---- the counted section around OpenBLAS's global thread count ----------------------------- */

#if defined(PROTOOD_BLAS_OPENBLAS)
enum { SECTION_LOOPS = 2000 };

typedef struct section_job {
    pthread_barrier_t *go;
    /* scoring threads: */
    const protood_scorer *scorer;
    int64_t m;
    const float *q, *want;
    verdict v;
} section_job;

static void *enter_and_leave(void *arg)
{
    section_job *j = arg;
    pthread_barrier_wait(j->go);
    if (j->scorer) { /* a scoring call takes the section itself, around its parallel tiles */
        float *got = malloc((size_t)j->m * sizeof *got);
        for (int r = 0; r < 2 * ROUNDS; r++)
            if (protood_scorer_score(j->scorer, j->m, j->q, got) != PROTOOD_OK ||
                memcmp(got, j->want, (size_t)j->m * sizeof *got) != 0)
                mismatch(&j->v, "round %d: scores differ from the sequential run", r);
        free(got);
        return NULL;
    }
    for (int k = 0; k < SECTION_LOOPS; k++) {
        pood_blas_serial_begin();
        /* While any caller is inside, nobody may have restored the count: a section that another
         * thread's end could close early would show 2 here. */
        int inside = openblas_get_num_threads();
        pood_blas_serial_end();
        if (inside != 1)
            mismatch(&j->v, "loop %d: %d OpenBLAS threads inside the section", k, inside);
    }
    return NULL;
}

START_TEST(blas_section_hammered_from_many_threads)
{
    /* Debian's OpenBLAS is the pthreads build, the one the section exists for (blas_threads.h). */
    ck_assert_msg(openblas_get_parallel() == 1, "OpenBLAS reports parallel mode %d, not the pthreads build",
                  openblas_get_parallel());
    const int initial = openblas_get_num_threads();
    const int64_t d = 16, n = 1500, m = 400;
    float *x = make_rows(11, n, d, 0, NULL), *q = make_rows(12, m, d, 0, NULL), *want = malloc(m * sizeof *want);
    protood_scorer *knn;
    ck_assert_int_eq(protood_scorer_create(&knn, PROTOOD_SCORER_KNN, d), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(knn, n, x, NULL, 0), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_score(knn, m, q, want), PROTOOD_OK);
    /* From 3 threads the section must go to 1 and come back to exactly 3; from 1 it has nothing
     * to change and must leave 1. */
    static const int before[] = {3, 1};
    for (int c = 0; c < 2; c++) {
        openblas_set_num_threads(before[c]);
        pthread_barrier_t go;
        ck_assert_int_eq(pthread_barrier_init(&go, NULL, T), 0);
        section_job jobs[T];
        for (int t = 0; t < T; t++)
            jobs[t] = t < 2 ? (section_job){&go, knn, m, q, want, {""}} : (section_job){&go, NULL, 0, NULL, NULL, {""}};
        run_threads(T, enter_and_leave, jobs, sizeof jobs[0]);
        for (int t = 0; t < T; t++)
            ck_assert_msg(jobs[t].v.text[0] == '\0', "from %d threads, thread %d: %s", before[c], t, jobs[t].v.text);
        ck_assert_int_eq(openblas_get_num_threads(), before[c]);
        pthread_barrier_destroy(&go);
    }
    openblas_set_num_threads(initial);   /* the suite runs unforked under TSan: leave no trace */
    protood_scorer_free(knn);
    free(x);
    free(q);
    free(want);
}
END_TEST
#endif

int main(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("contract");
    tcase_add_test(tc, one_scorer_of_each_kind_scored_by_many_threads);
    tcase_add_test(tc, one_bank_read_by_many_threads);
    tcase_add_test(tc, steps_on_distinct_banks_while_others_score);
    tcase_add_test(tc, last_error_belongs_to_the_thread);
#if defined(PROTOOD_BLAS_OPENBLAS)
    /* BLIS and OpenMP-threaded BLASes need no section (blas_threads.h): it compiles to nothing */
    tcase_add_test(tc, blas_section_hammered_from_many_threads);
#endif
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
