/* Data-parallel steps and sharded scorers (docs/distributed.md), with R ranks simulated by R
 * threads of this process: the reducer sums through shared memory behind a pthread barrier, in
 * rank order, like MPI_Allreduce(MPI_SUM). Every result is compared with the single-process call
 * on the concatenated batch (SPEC.md §8 tolerances), which is what the distributed call promises. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "protood.h"
#include "testutil.h"

#define MAX_RANKS 4

/* ---- the in-process allreduce ---------------------------------------------------------------- */

typedef struct sim {
    int R;
    pthread_barrier_t bar;
    double *stage[MAX_RANKS];
    int64_t count[MAX_RANKS];
} sim;

typedef struct rank_ctx {
    sim *s;
    int rank;
    int64_t calls, numbers;   /* exchanges made and doubles sent */
    int64_t fail_at;          /* this call (0-based) fails with 7; -1 never. R = 1 only. */
} rank_ctx;

static int32_t sim_allreduce(void *user, double *buf, int64_t count)
{
    rank_ctx *c = user;
    sim *s = c->s;
    if (c->calls++ == c->fail_at)
        return 7;
    c->numbers += count;
    double *copy = malloc((size_t)count * sizeof *copy);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, (size_t)count * sizeof *copy);
    s->stage[c->rank] = copy;
    s->count[c->rank] = count;
    pthread_barrier_wait(&s->bar);
    int same = 1;
    for (int r = 0; r < s->R; r++)
        same &= s->count[r] == count;
    if (same)
        for (int64_t j = 0; j < count; j++) {
            double t = 0.0;
            for (int r = 0; r < s->R; r++)
                t += s->stage[r][j];
            buf[j] = t;
        }
    pthread_barrier_wait(&s->bar);
    free(copy);
    return same ? 0 : 1;   /* mismatched counts: a broken exchange schedule */
}

static void sim_init(sim *s, int R)
{
    memset(s, 0, sizeof *s);
    s->R = R;
    ck_assert_int_eq(pthread_barrier_init(&s->bar, NULL, (unsigned)R), 0);
}

static void ctx_init(rank_ctx *c, sim *s, int rank)
{
    memset(c, 0, sizeof *c);
    c->s = s;
    c->rank = rank;
    c->fail_at = -1;
}

/* ---- data -------------------------------------------------------------------------------------- */

static uint64_t rng_state;
static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static float *random_rows(int64_t n, int64_t d, uint64_t seed)
{
    rng_state = seed;
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t k = 0; k < n * d; k++)
        x[k] = (float)(2.0 * uniform() - 1.0);
    return x;
}

static int32_t *random_labels(int64_t n, int64_t classes, uint64_t seed)
{
    rng_state = seed;
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        y[i] = (int32_t)(uniform() * (double)classes);
    return y;
}

/* Uneven shards: rank r gets rows [first[r], first[r + 1]). */
static void split(int64_t n, int R, int64_t *first)
{
    first[0] = 0;
    for (int r = 1; r < R; r++)
        first[r] = n * r / R + (r % 2 ? 3 : -2);
    first[R] = n;
}

static void assert_close(const float *got, const float *want, int64_t n, double tol, const char *what, int rank)
{
    double scale = 0.0;
    for (int64_t k = 0; k < n; k++)
        scale = fmax(scale, fabs((double)want[k]));
    for (int64_t k = 0; k < n; k++)
        ck_assert_msg(fabs((double)got[k] - want[k]) <= tol * scale, "%s rank %d [%lld]: %.9g vs %.9g (scale %g)",
                      what, rank, (long long)k, (double)got[k], (double)want[k], scale);
}

static void assert_rel(double got, double want, double tol, const char *what)
{
    ck_assert_msg(fabs(got - want) <= tol * fmax(fabs(want), 1e-30), "%s: %.12g vs %.12g", what, got, want);
}

/* ---- training steps ---------------------------------------------------------------------- */

#define STEPS 3
typedef struct step_job {
    rank_ctx ctx;
    protood_bank *bank;
    int cider;
    int64_t n;
    const float *h;
    const int32_t *labels;
    int want_losses, want_grad;
    double losses[STEPS][3];
    float *grad[STEPS];
    protood_status st[STEPS];
} step_job;

static void *run_steps(void *arg)
{
    step_job *j = arg;
    for (int t = 0; t < STEPS; t++) {
        double *losses = j->want_losses ? j->losses[t] : NULL;
        float *grad = j->want_grad ? j->grad[t] : NULL;
        j->st[t] = j->cider ? protood_cider_step(j->bank, j->n, j->h, j->labels, losses, grad)
                            : protood_palm_step(j->bank, j->n, j->h, j->labels, losses, grad);
    }
    return NULL;
}

typedef struct step_case {
    int cider;
    int64_t classes, K, D, n;
    int supervised;
    double momentum;
    int outputs_vary;   /* the last rank asks for no losses, the last two (R > 2) for no gradient */
} step_case;

static protood_bank *make_bank(const step_case *c)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, c->classes, c->K, c->D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_SPHERE, 11), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_MOMENTUM, c->momentum), PROTOOD_OK);
    return b;
}

static void check_steps(const step_case *c, int R)
{
    const int64_t D = c->D, n = c->n, P = c->classes * c->K;
    float *h = random_rows(n, D, 100 + (uint64_t)R);
    int32_t *y = c->supervised ? random_labels(n, c->classes, 7) : NULL;

    /* the single-process reference on the whole batch */
    protood_bank *ref = make_bank(c);
    double want_l[STEPS][3];
    float *want_g[STEPS];
    for (int t = 0; t < STEPS; t++) {
        want_g[t] = malloc((size_t)(n * D) * sizeof(float));
        protood_status st = c->cider ? protood_cider_step(ref, n, h, y, want_l[t], want_g[t])
                                     : protood_palm_step(ref, n, h, y, want_l[t], want_g[t]);
        ck_assert_int_eq(st, PROTOOD_OK);
    }
    float *want_p = malloc((size_t)(P * D) * sizeof(float));
    ck_assert_int_eq(protood_bank_get_prototypes(ref, want_p), PROTOOD_OK);

    sim s;
    sim_init(&s, R);
    int64_t first[MAX_RANKS + 1];
    split(n, R, first);
    step_job job[MAX_RANKS];
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < R; r++) {
        step_job *j = &job[r];
        memset(j, 0, sizeof *j);
        ctx_init(&j->ctx, &s, r);
        j->bank = make_bank(c);
        ck_assert_int_eq(protood_bank_set_reducer(j->bank, sim_allreduce, &j->ctx, r, R), PROTOOD_OK);
        j->cider = c->cider;
        j->n = first[r + 1] - first[r];
        j->h = h + first[r] * D;
        j->labels = y ? y + first[r] : NULL;
        j->want_losses = !(c->outputs_vary && R > 1 && r == R - 1);
        /* at R = 3 the last rank passes neither: it only moves its bank, yet must join the loss
         * exchanges the others make */
        j->want_grad = !(c->outputs_vary && R > 2 && r >= R - 2);
        for (int t = 0; t < STEPS; t++)
            j->grad[t] = malloc((size_t)(j->n * D) * sizeof(float));
        ck_assert_int_eq(pthread_create(&th[r], NULL, run_steps, j), 0);
    }
    for (int r = 0; r < R; r++)
        pthread_join(th[r], NULL);

    float *got_p = malloc((size_t)(P * D) * sizeof(float)), *rank0_p = malloc((size_t)(P * D) * sizeof(float));
    for (int r = 0; r < R; r++) {
        step_job *j = &job[r];
        for (int t = 0; t < STEPS; t++) {
            ck_assert_msg(j->st[t] == PROTOOD_OK, "rank %d step %d: %s", r, t, protood_last_error());
            if (j->want_losses)
                for (int k = 0; k < 3; k++)
                    assert_rel(j->losses[t][k], want_l[t][k], 1e-5, "loss");
            if (j->want_grad)
                assert_close(j->grad[t], want_g[t] + first[r] * D, j->n * D, 1e-4, "grad", r);
        }
        ck_assert_int_eq(protood_bank_get_prototypes(j->bank, got_p), PROTOOD_OK);
        assert_close(got_p, want_p, P * D, 1e-4, "prototypes", r);
        /* every rank computes P' from the same summed numbers: the same bits everywhere */
        if (r == 0)
            memcpy(rank0_p, got_p, (size_t)(P * D) * sizeof(float));
        else
            ck_assert_msg(memcmp(rank0_p, got_p, (size_t)(P * D) * sizeof(float)) == 0, "rank %d bank differs", r);
        /* communication: O(P D + iters P) numbers per PALM step, never the features */
        if (!c->cider) {
            double per_step = (double)j->ctx.numbers / STEPS;
            ck_assert_msg(per_step <= (double)(P * (D + 1) + 2 * 3 * (P + 1) + 16), "rank %d sent %g numbers per step",
                          r, per_step);
        }
        for (int t = 0; t < STEPS; t++)
            free(j->grad[t]);
        protood_bank_free(j->bank);
    }
    pthread_barrier_destroy(&s.bar);
    for (int t = 0; t < STEPS; t++)
        free(want_g[t]);
    free(want_p);
    free(got_p);
    free(rank0_p);
    protood_bank_free(ref);
    free(h);
    free(y);
}

/* sparse support (top-k of K = 4 among P = 24), a strong EMA so that its gradient path counts */
static const step_case palm_sparse = {0, 6, 4, 16, 41, 1, 0.9, 1};
/* unsupervised: the support is every prototype, A is materialised (the dense path) */
static const step_case palm_dense = {0, 3, 2, 8, 29, 0, 0.99, 0};
static const step_case cider = {1, 5, 1, 12, 33, 1, 0.5, 1};

START_TEST(palm_sparse_matches_single_process) { check_steps(&palm_sparse, _i); }
END_TEST
START_TEST(palm_dense_matches_single_process) { check_steps(&palm_dense, _i); }
END_TEST
START_TEST(cider_matches_single_process) { check_steps(&cider, _i); }
END_TEST

/* ---- scorers ----------------------------------------------------------------------------- */

typedef struct score_job {
    rank_ctx ctx;
    protood_scorer *sc;
    int64_t n, m;
    const float *x, *q;
    const int32_t *labels;
    int64_t classes;
    float *out;
    protood_status fit_st, score_st;
} score_job;

static void *run_scorer(void *arg)
{
    score_job *j = arg;
    j->fit_st = protood_scorer_fit(j->sc, j->n, j->x, j->labels, j->classes);
    if (j->fit_st == PROTOOD_OK)
        j->score_st = protood_scorer_score(j->sc, j->m, j->q, j->out);
    return NULL;
}

static void check_scorer(int32_t kind, int R, int64_t k)
{
    const int64_t D = 10, n = 61, m = 23, C = 4;
    float *x = random_rows(n, D, 5), *q = random_rows(m, D, 6);
    int32_t *y = kind == PROTOOD_SCORER_MAHALANOBIS ? random_labels(n, C, 9) : NULL;
    if (y) /* class 3 lives on the last shard only */
        for (int64_t i = 0; i < n; i++)
            if (y[i] == 3 && i < n - 8)
                y[i] = (int32_t)(i % 3);
    int64_t classes = y ? C : 0;

    protood_scorer *ref;
    ck_assert_int_eq(protood_scorer_create(&ref, kind, D), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(ref, PROTOOD_SCORER_K, (double)k), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(ref, n, x, y, classes), PROTOOD_OK);
    float *want = malloc((size_t)m * sizeof *want);
    ck_assert_int_eq(protood_scorer_score(ref, m, q, want), PROTOOD_OK);

    sim s;
    sim_init(&s, R);
    int64_t first[MAX_RANKS + 1];
    split(n, R, first);
    score_job job[MAX_RANKS];
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < R; r++) {
        score_job *j = &job[r];
        memset(j, 0, sizeof *j);
        ctx_init(&j->ctx, &s, r);
        ck_assert_int_eq(protood_scorer_create(&j->sc, kind, D), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_param(j->sc, PROTOOD_SCORER_K, (double)k), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_reducer(j->sc, sim_allreduce, &j->ctx, r, R), PROTOOD_OK);
        j->n = first[r + 1] - first[r];
        j->x = x + first[r] * D;
        j->labels = y ? y + first[r] : NULL;
        j->classes = classes;
        j->m = m;
        j->q = q;
        j->out = malloc((size_t)m * sizeof(float));
        ck_assert_int_eq(pthread_create(&th[r], NULL, run_scorer, j), 0);
    }
    for (int r = 0; r < R; r++)
        pthread_join(th[r], NULL);
    for (int r = 0; r < R; r++) {
        score_job *j = &job[r];
        ck_assert_msg(j->fit_st == PROTOOD_OK && j->score_st == PROTOOD_OK, "rank %d: %d %d", r, j->fit_st,
                      j->score_st);
        for (int64_t i = 0; i < m; i++) {
            if (kind == PROTOOD_SCORER_KNN) /* the same double distances: the same bits */
                ck_assert_msg(j->out[i] == want[i], "knn rank %d query %lld: %.9g vs %.9g", r, (long long)i,
                              (double)j->out[i], (double)want[i]);
            else
                assert_rel(j->out[i], want[i], 1e-4, "gaussian score");
        }
        /* without its reducer a KNN shard cannot score; a Gaussian model is whole on every rank */
        ck_assert_int_eq(protood_scorer_set_reducer(j->sc, NULL, NULL, 0, 1), PROTOOD_OK);
        float one;
        protood_status st = protood_scorer_score(j->sc, 1, q, &one);
        if (kind == PROTOOD_SCORER_KNN) {
            ck_assert_int_eq(st, PROTOOD_E_STATE);
            ck_assert_ptr_nonnull(strstr(protood_last_error(), "shard"));
            size_t bytes;
            ck_assert_int_eq(protood_scorer_to_buffer(j->sc, NULL, 0, &bytes), PROTOOD_E_STATE);
        } else {
            ck_assert_int_eq(st, PROTOOD_OK);
            ck_assert(one == j->out[0]);
        }
        protood_scorer_free(j->sc);
        free(j->out);
    }
    pthread_barrier_destroy(&s.bar);
    protood_scorer_free(ref);
    free(want);
    free(x);
    free(q);
    free(y);
}

/* k = 20 exceeds the smallest shard at R = 3 (61 / 3 - 2 = 18 rows): short shards pad with +inf */
START_TEST(knn_matches_single_process) { check_scorer(PROTOOD_SCORER_KNN, _i, 20); }
END_TEST
/* k = every row: each shard's whole list is merged, padding included */
START_TEST(knn_k_all_rows) { check_scorer(PROTOOD_SCORER_KNN, _i, 61); }
END_TEST
START_TEST(mahalanobis_matches_single_process) { check_scorer(PROTOOD_SCORER_MAHALANOBIS, _i, 1); }
END_TEST
START_TEST(ssd_matches_single_process) { check_scorer(PROTOOD_SCORER_SSD, _i, 1); }
END_TEST

/* ---- failures ---------------------------------------------------------------------------- */

/* A reducer failing at each of its calls in turn: E_CALLBACK, the bank bit for bit as before, the
 * outputs untouched. One rank, so that no other thread waits for the failed exchange. */
static void check_failing_reducer_step(int cider_step)
{
    const step_case *c = cider_step ? &cider : &palm_sparse;
    const int64_t D = c->D, n = c->n, P = c->classes * c->K;
    float *h = random_rows(n, D, 3);
    int32_t *y = random_labels(n, c->classes, 4);
    sim s;
    sim_init(&s, 1);
    rank_ctx ctx;
    ctx_init(&ctx, &s, 0);
    protood_bank *b = make_bank(c);
    ck_assert_int_eq(protood_bank_set_reducer(b, sim_allreduce, &ctx, 0, 1), PROTOOD_OK);
    double losses[3];
    float *grad = malloc((size_t)(n * D) * sizeof *grad);
    float *before = malloc((size_t)(P * D) * sizeof *before), *after = malloc((size_t)(P * D) * sizeof *after);
    /* one successful step first (also moves the bank away from its initial state) */
    ck_assert_int_eq(cider_step ? protood_cider_step(b, n, h, y, losses, grad) : protood_palm_step(b, n, h, y, losses, grad),
                     PROTOOD_OK);
    int64_t calls = ctx.calls;
    ck_assert_int_ge(calls, cider_step ? 3 : 9);
    for (int64_t at = 0; at < calls; at++) {
        ck_assert_int_eq(protood_bank_get_prototypes(b, before), PROTOOD_OK);
        ctx.calls = 0;
        ctx.fail_at = at;
        for (int64_t k = 0; k < n * D; k++)
            grad[k] = 42.0f;
        losses[0] = losses[1] = losses[2] = 42.0;
        protood_status st = cider_step ? protood_cider_step(b, n, h, y, losses, grad)
                                       : protood_palm_step(b, n, h, y, losses, grad);
        ck_assert_msg(st == PROTOOD_E_CALLBACK, "failing call %lld: status %d", (long long)at, st);
        ck_assert_ptr_nonnull(strstr(protood_last_error(), "reducer returned 7"));
        ck_assert_int_eq(protood_bank_get_prototypes(b, after), PROTOOD_OK);
        ck_assert_msg(memcmp(before, after, (size_t)(P * D) * sizeof *after) == 0, "bank changed (call %lld)",
                      (long long)at);
        for (int64_t k = 0; k < n * D; k++)
            ck_assert(grad[k] == 42.0f);
        ck_assert(losses[0] == 42.0 && losses[1] == 42.0 && losses[2] == 42.0);
    }
    /* and it still works afterwards */
    ctx.fail_at = -1;
    ck_assert_int_eq(cider_step ? protood_cider_step(b, n, h, y, losses, grad) : protood_palm_step(b, n, h, y, losses, grad),
                     PROTOOD_OK);
    pthread_barrier_destroy(&s.bar);
    protood_bank_free(b);
    free(grad);
    free(before);
    free(after);
    free(h);
    free(y);
}

START_TEST(failing_reducer_palm) { check_failing_reducer_step(0); }
END_TEST
START_TEST(failing_reducer_cider) { check_failing_reducer_step(1); }
END_TEST

/* Fit and score with a failing reducer: the previous model stays, the scores are untouched. */
START_TEST(failing_reducer_scorer)
{
    const int32_t kinds[3] = {PROTOOD_SCORER_KNN, PROTOOD_SCORER_MAHALANOBIS, PROTOOD_SCORER_SSD};
    const int64_t D = 6, n = 30, m = 9;
    float *x = random_rows(n, D, 21), *x2 = random_rows(n, D, 22), *q = random_rows(m, D, 23);
    int32_t *y = random_labels(n, 3, 24);
    for (int t = 0; t < 3; t++) {
        int32_t kind = kinds[t];
        const int32_t *labels = kind == PROTOOD_SCORER_MAHALANOBIS ? y : NULL;
        int64_t classes = labels ? 3 : 0;
        sim s;
        sim_init(&s, 1);
        rank_ctx ctx;
        ctx_init(&ctx, &s, 0);
        protood_scorer *sc;
        ck_assert_int_eq(protood_scorer_create(&sc, kind, D), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_param(sc, PROTOOD_SCORER_K, 5), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_reducer(sc, sim_allreduce, &ctx, 0, 1), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_fit(sc, n, x, labels, classes), PROTOOD_OK);
        int64_t fit_calls = ctx.calls;
        ck_assert_int_eq(fit_calls, kind == PROTOOD_SCORER_KNN ? 2 : 6);
        float want[9], got[9];
        ck_assert_int_eq(protood_scorer_score(sc, m, q, want), PROTOOD_OK);
        for (int64_t at = 0; at < fit_calls; at++) {
            ctx.calls = 0;
            ctx.fail_at = at;
            ck_assert_int_eq(protood_scorer_fit(sc, n, x2, labels, classes), PROTOOD_E_CALLBACK);
            ctx.fail_at = -1;
            ck_assert_int_eq(protood_scorer_score(sc, m, q, got), PROTOOD_OK);
            ck_assert_msg(memcmp(want, got, sizeof got) == 0, "kind %d: model changed (call %lld)", kind,
                          (long long)at);
        }
        /* a sharded KNN score exchanges (agreement, candidates); Gaussian scores are local */
        ctx.calls = 0;
        ck_assert_int_eq(protood_scorer_score(sc, m, q, got), PROTOOD_OK);
        int64_t score_calls = ctx.calls;
        ck_assert_int_eq(score_calls, kind == PROTOOD_SCORER_KNN ? 2 : 0);
        for (int64_t at = 0; at < score_calls; at++) {
            ctx.calls = 0;
            ctx.fail_at = at;
            for (int i = 0; i < 9; i++)
                got[i] = 42.0f;
            ck_assert_int_eq(protood_scorer_score(sc, m, q, got), PROTOOD_E_CALLBACK);
            for (int i = 0; i < 9; i++)
                ck_assert(got[i] == 42.0f);
        }
        pthread_barrier_destroy(&s.bar);
        protood_scorer_free(sc);
    }
    free(x);
    free(x2);
    free(q);
    free(y);
}
END_TEST

/* A rank with a bad argument fails with its own error, the others with E_STATE; no bank moves. */
typedef struct bad_job {
    rank_ctx ctx;
    protood_bank *bank;
    int64_t n;
    const float *h;
    const int32_t *labels;
    protood_status st;
    int cider;
} bad_job;

static void *run_bad(void *arg)
{
    bad_job *j = arg;
    double l[3];
    j->st = j->cider ? protood_cider_step(j->bank, j->n, j->h, j->labels, l, NULL)
                     : protood_palm_step(j->bank, j->n, j->h, j->labels, l, NULL);
    return NULL;
}

START_TEST(bad_argument_on_one_rank)
{
    const step_case *c = _i ? &cider : &palm_sparse;
    const int R = 3;
    const int64_t D = c->D, n = c->n, P = c->classes * c->K;
    float *h = random_rows(n, D, 31);
    int32_t *y = random_labels(n, c->classes, 32);
    int64_t first[MAX_RANKS + 1];
    split(n, R, first);
    y[first[1] + 2] = (int32_t)c->classes;   /* rank 1: a label out of range */
    sim s;
    sim_init(&s, R);
    bad_job job[3];
    pthread_t th[3];
    protood_bank *ref = make_bank(c);
    float *want = malloc((size_t)(P * D) * sizeof *want), *got = malloc((size_t)(P * D) * sizeof *got);
    ck_assert_int_eq(protood_bank_get_prototypes(ref, want), PROTOOD_OK);
    for (int r = 0; r < R; r++) {
        bad_job *j = &job[r];
        ctx_init(&j->ctx, &s, r);
        j->bank = make_bank(c);
        ck_assert_int_eq(protood_bank_set_reducer(j->bank, sim_allreduce, &j->ctx, r, R), PROTOOD_OK);
        j->n = first[r + 1] - first[r];
        j->h = h + first[r] * D;
        j->labels = y + first[r];
        j->cider = c->cider;
        ck_assert_int_eq(pthread_create(&th[r], NULL, run_bad, j), 0);
    }
    for (int r = 0; r < R; r++)
        pthread_join(th[r], NULL);
    for (int r = 0; r < R; r++) {
        ck_assert_int_eq(job[r].st, r == 1 ? PROTOOD_E_LABEL : PROTOOD_E_STATE);
        ck_assert_int_eq(protood_bank_get_prototypes(job[r].bank, got), PROTOOD_OK);
        ck_assert(memcmp(want, got, (size_t)(P * D) * sizeof *got) == 0);
        protood_bank_free(job[r].bank);
    }
    pthread_barrier_destroy(&s.bar);
    protood_bank_free(ref);
    free(want);
    free(got);
    free(h);
    free(y);
}
END_TEST

static int32_t never_called(void *user, double *buf, int64_t count)
{
    (void)user;
    (void)buf;
    (void)count;
    return 1;
}

START_TEST(set_reducer_arguments)
{
    protood_bank *b;
    protood_scorer *sc;
    ck_assert_int_eq(protood_bank_create(&b, 3, 2, 4), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_create(&sc, PROTOOD_SCORER_KNN, 4), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_reducer(NULL, never_called, NULL, 0, 1), PROTOOD_E_INVALID_ARG);
    ck_assert_int_eq(protood_bank_set_reducer(b, never_called, NULL, 2, 2), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "rank = 2"));
    ck_assert_int_eq(protood_bank_set_reducer(b, never_called, NULL, -1, 2), PROTOOD_E_INVALID_ARG);
    ck_assert_int_eq(protood_bank_set_reducer(b, never_called, NULL, 0, 0), PROTOOD_E_INVALID_ARG);
    ck_assert_int_eq(protood_bank_set_reducer(b, NULL, NULL, 1, 2), PROTOOD_E_INVALID_ARG);
    ck_assert_int_eq(protood_scorer_set_reducer(NULL, never_called, NULL, 0, 1), PROTOOD_E_INVALID_ARG);
    ck_assert_int_eq(protood_scorer_set_reducer(sc, never_called, NULL, 3, 3), PROTOOD_E_INVALID_ARG);
    /* the log-domain Sinkhorn cannot be distributed: refused before anything moves */
    ck_assert_int_eq(protood_bank_set_reducer(b, never_called, NULL, 0, 1), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_SINKHORN_EPSILON, 0.001), PROTOOD_OK);
    float h[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    int32_t y[2] = {0, 1};
    /* the argument check exchange itself fails (never_called returns 1): E_UNSUPPORTED stays */
    ck_assert_int_eq(protood_palm_step(b, 2, h, y, NULL, NULL), PROTOOD_E_UNSUPPORTED);
    /* detached, the same step runs single-process (the log domain) */
    ck_assert_int_eq(protood_bank_set_reducer(b, NULL, NULL, 0, 1), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(b, 2, h, y, NULL, NULL), PROTOOD_OK);
    /* a clone never carries the reducer */
    protood_bank *c;
    ck_assert_int_eq(protood_bank_set_reducer(b, never_called, NULL, 0, 1), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_SINKHORN_EPSILON, 0.05), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_clone(&c, b), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(c, 2, h, y, NULL, NULL), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(b, 2, h, y, NULL, NULL), PROTOOD_E_CALLBACK);
    protood_bank_free(c);
    protood_bank_free(b);
    protood_scorer_free(sc);
}
END_TEST

static int32_t feed_one(void *user, int64_t first, int64_t count, float *rows, int32_t *labels)
{
    (void)user;
    for (int64_t i = 0; i < count * 4; i++)
        rows[i] = (float)(first + i + 1);
    for (int64_t i = 0; labels && i < count; i++)
        labels[i] = 0;
    return 0;
}

/* Streaming fits are single-process: with a reducer attached, a fit of this rank's rows alone
 * would be silently wrong, so it is refused before any row is pulled. */
START_TEST(fit_stream_refuses_a_reducer)
{
    for (int32_t kind = PROTOOD_SCORER_KNN; kind <= PROTOOD_SCORER_SSD; kind++) {
        protood_scorer *sc;
        int32_t fitted = -1;
        ck_assert_int_eq(protood_scorer_create(&sc, kind, 4), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_param(sc, PROTOOD_SCORER_K, 1), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_reducer(sc, never_called, NULL, 0, 2), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_fit_stream(sc, 6, 2, feed_one, NULL, 1), PROTOOD_E_STATE);
        ck_assert_ptr_nonnull(strstr(protood_last_error(), "protood_scorer_fit_stream: the scorer has a reducer"));
        ck_assert_int_eq(protood_scorer_info(sc, NULL, NULL, &fitted), PROTOOD_OK);
        ck_assert_int_eq(fitted, 0);
        /* detached, the same stream fits */
        ck_assert_int_eq(protood_scorer_set_reducer(sc, NULL, NULL, 0, 1), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_fit_stream(sc, 6, 2, feed_one, NULL, 1), PROTOOD_OK);
        protood_scorer_free(sc);
    }
}
END_TEST

int main(void)
{
    protood_set_threads(1);   /* R threads already share two cores */
    Suite *s = suite_create("distributed");
    TCase *tt = tcase_create("steps");
    tcase_add_loop_test(tt, palm_sparse_matches_single_process, 1, 4);
    tcase_add_loop_test(tt, palm_dense_matches_single_process, 1, 4);
    tcase_add_loop_test(tt, cider_matches_single_process, 1, 4);
    suite_add_tcase(s, tt);
    TCase *ts = tcase_create("scorers");
    tcase_add_loop_test(ts, knn_matches_single_process, 1, 4);
    tcase_add_loop_test(ts, knn_k_all_rows, 1, 4);
    tcase_add_loop_test(ts, mahalanobis_matches_single_process, 1, 4);
    tcase_add_loop_test(ts, ssd_matches_single_process, 1, 4);
    suite_add_tcase(s, ts);
    TCase *tf = tcase_create("failures");
    tcase_add_test(tf, failing_reducer_palm);
    tcase_add_test(tf, failing_reducer_cider);
    tcase_add_test(tf, failing_reducer_scorer);
    tcase_add_loop_test(tf, bad_argument_on_one_rank, 0, 2);
    tcase_add_test(tf, set_reducer_arguments);
    tcase_add_test(tf, fit_stream_refuses_a_reducer);
    suite_add_tcase(s, tf);
    return tu_run_suite(s);
}
