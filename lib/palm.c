/* PALM training step (SPEC.md §3): Sinkhorn assignment, top-k class-restricted EMA update of the
 * prototype mixture, MLE loss, prototype-contrastive loss, and the analytic gradient with respect to
 * the raw features, including the path of the contrastive loss through the EMA update (§3.1).
 *
 * Sparsity is what makes this fast: row i of A and W is non-zero only on its support, the top-k
 * entries of its own class (k <= K of P columns). U = A^T z and the EMA gradient path are therefore
 * scatter/gather loops of n*k*D work, and only the genuinely dense products (scores, the MLE
 * gradient, the prototype Gram matrix) go to CBLAS. When the support is a large part of the row
 * (unsupervised with a large k, or K close to P) A is materialised and those two products become
 * GEMMs too. */
#include "palm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bank.h"
#include "blas.h"
#include "errors.h"
#include "vecmath.h"
#include "sinkhorn.h"
#include "validate.h"

#define NORM_EPS 1e-12          /* n1 and n2 of SPEC.md divide by max(norm, 1e-12) */
#define INSERTION_TOPK_MAX 16   /* larger supports are selected by sorting the row */
/* |z . p| for rows of norm at most 1 (n2 never lengthens a row), with room for float rounding */
#define COSINE_BOUND 1.0001

/* ---- shape of one call ------------------------------------------------------------------- */

typedef struct palm_shape {
    int64_t n, P, D, K;
    int supervised;
    int64_t s;      /* support entries per row: top-k clamped to K (supervised) or P, 0 = all */
    int dense;      /* materialise A for the U and EMA-gradient products */
} palm_shape;

static palm_shape make_shape(const protood_bank *bank, int64_t n, const int32_t *labels)
{
    palm_shape sh;
    sh.n = n;
    sh.P = bank->n_protos;
    sh.D = bank->dim;
    sh.K = bank->protos_per_class;
    sh.supervised = labels != NULL;
    int64_t k = (int64_t)bank->params[PROTOOD_BANK_TOPK];
    int64_t cap = sh.supervised ? sh.K : sh.P;
    sh.s = (k == 0 || k > cap) ? cap : k;
    /* A GEMM runs roughly an order of magnitude faster per flop than the scatter loop. */
    sh.dense = (double)sh.s * 8.0 >= (double)sh.P;
    return sh;
}

/* Byte offsets of the scratch arrays, with every size product checked for overflow. */
typedef struct layout {
    size_t size;
    int overflow;
} layout;

static size_t take(layout *l, int64_t a, int64_t b, size_t elem)
{
    size_t at = (l->size + 63) & ~(size_t)63, ab, bytes;
    if (at < l->size || a < 0 || b < 0 || __builtin_mul_overflow((size_t)a, (size_t)b, &ab) ||
        __builtin_mul_overflow(ab, elem, &bytes) || __builtin_add_overflow(at, bytes, &l->size))
        l->overflow = 1;
    return at;
}

/* ---- building blocks shared by the step and palm_assign ---------------------------------- */

typedef struct cand {
    double v;
    int64_t j;
} cand;

/* Descending value, then ascending index: a total order, so ties resolve the same everywhere. */
static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

/* The s largest of q[first .. first+count) (ties: the lower index first) into idx. */
static void select_topk(const double *q, int64_t first, int64_t count, int64_t s, int64_t *idx, cand *tmp)
{
    if (s >= count) {
        for (int64_t t = 0; t < count; t++)
            idx[t] = first + t;
        return;
    }
    if (s <= INSERTION_TOPK_MAX) {
        double best[INSERTION_TOPK_MAX];
        int64_t m = 0;
        for (int64_t j = first; j < first + count; j++) {
            double v = q[j];
            if (m == s && !(v > best[s - 1]))
                continue;
            int64_t t = m < s ? m++ : s - 1;
            while (t > 0 && v > best[t - 1]) {
                best[t] = best[t - 1];
                idx[t] = idx[t - 1];
                t--;
            }
            best[t] = v;
            idx[t] = j;
        }
        return;
    }
    for (int64_t j = 0; j < count; j++) {
        tmp[j].v = q[first + j];
        tmp[j].j = first + j;
    }
    qsort(tmp, (size_t)count, sizeof *tmp, cand_cmp);
    for (int64_t t = 0; t < s; t++)
        idx[t] = tmp[t].j;
}

/* Steps 1 and 3: the support of every row (T ⊙ M as index lists of sh->s entries). The class mask
 * restricts the candidates to the row's class block (class-major layout); the top-k of M ⊙ Q over
 * the whole row can only differ from that by picking among exact zeros, which carry no weight. */
static void compute_support(const palm_shape *sh, const int32_t *labels, const double *q, int64_t *idx,
                            cand *tmp)
{
    int64_t n = sh->n, P = sh->P, s = sh->s;
    for (int64_t i = 0; i < n; i++) {
        int64_t first = sh->supervised ? (int64_t)labels[i] * sh->K : 0;
        int64_t count = sh->supervised ? sh->K : P;
        select_topk(q + i * P, first, count, s, idx + i * s, tmp);
    }
}

/* n1 of row i restricted to its support: w_t = q[idx_t] / max(sum_t q[idx_t], 1e-12). */
static void normalise_support(const palm_shape *sh, const double *q, const int64_t *idx, double *w)
{
    int64_t s = sh->s, P = sh->P;
    for (int64_t i = 0; i < sh->n; i++) {
        double sum = 0.0;
        for (int64_t t = 0; t < s; t++) {
            w[i * s + t] = q[i * P + idx[i * s + t]];
            sum += w[i * s + t];
        }
        double d = sum > NORM_EPS ? sum : NORM_EPS;
        for (int64_t t = 0; t < s; t++)
            w[i * s + t] /= d;
    }
}

/* Scatter the support values into a dense n x P matrix. */
static void scatter_dense(const palm_shape *sh, const int64_t *idx, const double *w, float *out)
{
    memset(out, 0, (size_t)sh->n * (size_t)sh->P * sizeof *out);
    for (int64_t i = 0; i < sh->n; i++)
        for (int64_t t = 0; t < sh->s; t++)
            out[i * sh->P + idx[i * sh->s + t]] = (float)w[i * sh->s + t];
}

/* Square P x P helpers, tiled so that the column side stays in cache. */
#define TILE 32

/* Lower triangle := transpose of the upper one (what ssyrk leaves out). */
void pood_mirror_upper(int64_t P, float *G)
{
    for (int64_t a0 = 0; a0 < P; a0 += TILE)
        for (int64_t b0 = 0; b0 <= a0; b0 += TILE)
            for (int64_t a = a0; a < a0 + TILE && a < P; a++)
                for (int64_t b = b0; b < b0 + TILE && b < a; b++)
                    G[a * P + b] = G[b * P + a];
}

/* G := G + G^T. */
void pood_add_transpose(int64_t P, float *G)
{
    for (int64_t a0 = 0; a0 < P; a0 += TILE)
        for (int64_t b0 = a0; b0 < P; b0 += TILE)
            for (int64_t a = a0; a < a0 + TILE && a < P; a++)
                for (int64_t b = b0 > a ? b0 : a; b < b0 + TILE && b < P; b++) {
                    float t = G[a * P + b] + G[b * P + a];
                    G[a * P + b] = t;
                    G[b * P + a] = t;
                }
}

/* z = n2(h) row-wise, keeping ||h|| for the chain through n2. */
static void normalise_features(int64_t n, int64_t D, const float *h, float *z, double *hnorm)
{
    for (int64_t i = 0; i < n; i++) {
        double nrm = sqrt(pood_dot_f(D, h + i * D, h + i * D));
        double inv = 1.0 / (nrm > NORM_EPS ? nrm : NORM_EPS);
        for (int64_t j = 0; j < D; j++)
            z[i * D + j] = (float)(h[i * D + j] * inv);
        hnorm[i] = nrm;
    }
}

/* g (n x D, dL/dz on entry) becomes dL/dh: the Jacobian of n2 at h is (I - z z^T)/||h||, or
 * I/1e-12 where the clamp of n2 is active. */
static void chain_through_n2(int64_t n, int64_t D, const float *z, const double *hnorm, float *g)
{
    for (int64_t i = 0; i < n; i++) {
        float *gi = g + i * D;
        const float *zi = z + i * D;
        if (hnorm[i] > NORM_EPS) {
            double dot = pood_dot_f(D, zi, gi);
            double inv = 1.0 / hnorm[i];
            for (int64_t j = 0; j < D; j++)
                gi[j] = (float)((gi[j] - zi[j] * dot) * inv);
        } else {
            for (int64_t j = 0; j < D; j++)
                gi[j] = (float)(gi[j] / NORM_EPS);
        }
    }
}

/* Shared validation of the entry points; labels may be NULL (unsupervised). */
static protood_status validate(const char *func, const protood_bank *bank, int64_t n, const float *h,
                               const int32_t *labels)
{
    protood_status st;
    size_t bytes;
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "bank is NULL");
    if ((st = pood_check_count(func, "n", n)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n, bank->dim, sizeof(float), &bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n, bank->n_protos, sizeof(double), &bytes)) != PROTOOD_OK ||
        (st = pood_check_rows(func, "h", n, bank->dim, h)) != PROTOOD_OK)
        return st;
    if (labels && (st = pood_check_labels(func, n, labels, bank->n_classes)) != PROTOOD_OK)
        return st;
    if (n > INT32_MAX || bank->n_protos > INT32_MAX || bank->dim > INT32_MAX)
        return pood_fail(PROTOOD_E_SHAPE, func, "n = %lld or the bank's %lld x %lld exceeds the BLAS int range",
                         (long long)n, (long long)bank->n_protos, (long long)bank->dim);
    return PROTOOD_OK;
}

/* ---- the step ---------------------------------------------------------------------------- */

/* With a reducer (docs/distributed.md) each rank passes its own rows and the step is that of the
 * global batch. What couples rows is exchanged: Sinkhorn's column sums, A's column sums together
 * with U = A^T z, and the MLE loss sum; the 1/N factors use the global N. Everything else (P',
 * the prototype-contrastive loss and its gradient) is then computed identically on every rank. */
protood_status pood_palm_step(const char *func, protood_bank *bank, int64_t n, const float *h,
                              const int32_t *labels, double *losses, float *grad, const pood_palm_trace *trace)
{
    protood_status st = validate(func, bank, n, h, labels);
    const pood_reducer *red = bank && bank->reducer.fn ? &bank->reducer : NULL;
    if (st != PROTOOD_OK && !red)
        return st;
    if (st == PROTOOD_OK && red &&
        !pood_sinkhorn_dist_ok(COSINE_BOUND, bank->params[PROTOOD_BANK_SINKHORN_EPSILON]))
        st = pood_fail(PROTOOD_E_UNSUPPORTED, func, "SINKHORN_EPSILON = %g with a reducer: the distributed step "
                       "needs epsilon >= %g (the log-domain route needs maxima, not sums)",
                       bank->params[PROTOOD_BANK_SINKHORN_EPSILON],
                       2.0 * COSINE_BOUND / POOD_SINKHORN_DIRECT_RANGE);
    palm_shape sh = make_shape(bank, n, labels);
    int64_t P = sh.P, D = sh.D, s = sh.s;
    double m = bank->params[PROTOOD_BANK_MOMENTUM];
    double tau = bank->params[PROTOOD_BANK_TEMPERATURE];
    double eps = bank->params[PROTOOD_BANK_SINKHORN_EPSILON];
    int32_t iters = (int32_t)bank->params[PROTOOD_BANK_SINKHORN_ITERS];
    double lambda = bank->params[PROTOOD_BANK_LAMBDA_PCON];
    double tau_p = bank->params[PROTOOD_BANK_PCON_TEMPERATURE];
    /* Distributed, a rank without outputs still takes part in the loss exchanges of the others:
     * the workspace is sized for the losses, and want_loss is agreed on below. */
    int want_loss = losses != NULL || grad != NULL || red;
    int want_pcon = want_loss && lambda > 0.0 && P > 1;

    layout l = {0, 0};
    size_t o_z = take(&l, n, D, sizeof(float));
    size_t o_hn = take(&l, n, 1, sizeof(double));
    size_t o_s = take(&l, n, P, sizeof(float));                 /* scores, then the MLE gradient factor */
    size_t o_q = take(&l, n, P, sizeof(double));                /* Sinkhorn output, then dense A */
    size_t o_scr = take(&l, (int64_t)pood_sinkhorn_scratch_doubles(n, P), 1, sizeof(double));
    size_t o_idx = take(&l, n, s, sizeof(int64_t));
    size_t o_a = take(&l, n, s, sizeof(double));
    size_t o_w = take(&l, n, s, sizeof(double));
    size_t o_col = take(&l, P, 1, sizeof(double));
    size_t o_vinv = take(&l, P, 1, sizeof(double));
    size_t o_pn = take(&l, P, D, sizeof(float));
    size_t o_g = take(&l, want_pcon ? P : 0, D, sizeof(float));
    size_t o_gp = take(&l, want_pcon ? P : 0, P, sizeof(float));
    size_t o_tmp = take(&l, 1, P, sizeof(cand));
    size_t o_red = take(&l, red ? P : 0, D + 1, sizeof(double));   /* [col | U] exchanged as one */
    if (st == PROTOOD_OK && l.overflow)
        st = pood_fail(PROTOOD_E_SHAPE, func, "workspace for n = %lld rows x %lld prototypes overflows",
                       (long long)n, (long long)P);
    void *wsp = NULL;
    if (st == PROTOOD_OK)
        st = pood_bank_workspace(bank, func, l.size, &wsp);
    double n_all = (double)n;
    if (red) {
        double agree[3] = {0.0, (double)n, losses != NULL || grad != NULL};
        st = pood_reduce_agree(func, red, st, agree, 2);
        n_all = agree[1];
        want_loss = agree[2] != 0.0;
        want_pcon = want_loss && lambda > 0.0 && P > 1;
    }
    if (st != PROTOOD_OK)
        return st;
    pood_sinkhorn_dist dist = {func, red, n_all, PROTOOD_OK};
    char *base = wsp;
    float *z = (float *)(base + o_z), *S = (float *)(base + o_s), *pn = (float *)(base + o_pn);
    double *hn = (double *)(base + o_hn), *Q = (double *)(base + o_q), *scr = (double *)(base + o_scr);
    int64_t *idx = (int64_t *)(base + o_idx);
    double *av = (double *)(base + o_a), *wv = (double *)(base + o_w);
    double *col = (double *)(base + o_col), *vinv = (double *)(base + o_vinv);
    float *gp = (float *)(base + o_g), *G = (float *)(base + o_gp);
    cand *tmp = (cand *)(base + o_tmp);
    float *Adense = (float *)Q;   /* Q is dead whenever A is materialised */

    /* 1-2. normalised rows, scores against the old bank, first Sinkhorn pass */
    normalise_features(n, D, h, z, hn);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)P, (int)D, 1.0f, z, (int)D, bank->protos,
                (int)D, 0.0f, S, (int)P);
    /* the steps below read a row's Sinkhorn output on its class's prototypes only */
    pood_sinkhorn_window win = {labels, sh.K};
    const pood_sinkhorn_window *window = labels ? &win : NULL;
    if (red) {
        pood_sinkhorn_reduced(n, P, S, COSINE_BOUND, eps, iters, trace && trace->q1 ? NULL : window, Q, scr, &dist);
        if (dist.status != PROTOOD_OK)
            return dist.status;
    } else {
        pood_sinkhorn(n, P, S, COSINE_BOUND, eps, iters, trace && trace->q1 ? NULL : window, Q, scr);
    }
    if (trace && trace->q1)
        for (size_t k = 0; k < (size_t)n * (size_t)P; k++)
            trace->q1[k] = (float)Q[k];

    /* 3-4. support, A = n1_columns(n1_rows(T ⊙ M ⊙ Q1)) on the support */
    compute_support(&sh, labels, Q, idx, tmp);
    normalise_support(&sh, Q, idx, av);
    memset(col, 0, (size_t)P * sizeof *col);
    for (int64_t k = 0; k < n * s; k++)
        col[idx[k]] += av[k];
    if (red) {
        /* The column normalisation of A is a per-prototype factor, so U = A^T z is exchanged
         * before it: the global column sums and the rows' partial sums travel together. */
        double *rbuf = (double *)(base + o_red);
        memcpy(rbuf, col, (size_t)P * sizeof *col);
        double *ub = rbuf + P;
        memset(ub, 0, (size_t)P * (size_t)D * sizeof *ub);
        for (int64_t i = 0; i < n; i++)
            for (int64_t t = 0; t < s; t++) {
                double a = av[i * s + t];
                double *u = ub + idx[i * s + t] * D;
                const float *zi = z + i * D;
                for (int64_t j = 0; j < D; j++)
                    u[j] += a * zi[j];
            }
        if ((st = pood_reduce(func, red, "A column sums and U = A^T z", rbuf, P * (D + 1))) != PROTOOD_OK)
            return st;
        memcpy(col, rbuf, (size_t)P * sizeof *col);
        for (int64_t r = 0; r < P; r++) {
            double f = 1.0 / (col[r] > NORM_EPS ? col[r] : NORM_EPS);
            for (int64_t j = 0; j < D; j++)
                pn[r * D + j] = (float)(ub[r * D + j] * f);
        }
    }
    for (int64_t k = 0; k < n * s; k++)
        av[k] /= col[idx[k]] > NORM_EPS ? col[idx[k]] : NORM_EPS;
    if (trace && trace->a)
        scatter_dense(&sh, idx, av, trace->a);

    /* 5. U = A^T z into pn, then P' = n2(m P + (1 - m) U) row by row in place. A prototype that no
     * sample was assigned to keeps its row bit for bit (the formula would give n2(m P) = P up to
     * rounding); vinv = 0 marks it as outside the EMA gradient path. */
    if (red) {
        /* pn holds the global U already */
    } else if (sh.dense) {
        scatter_dense(&sh, idx, av, Adense);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)P, (int)D, (int)n, 1.0f, Adense, (int)P, z,
                    (int)D, 0.0f, pn, (int)D);
    } else {
        memset(pn, 0, (size_t)P * (size_t)D * sizeof *pn);
        for (int64_t i = 0; i < n; i++)
            for (int64_t t = 0; t < s; t++) {
                float a = (float)av[i * s + t];
                float *u = pn + idx[i * s + t] * D;
                const float *zi = z + i * D;
                for (int64_t j = 0; j < D; j++)
                    u[j] += a * zi[j];
            }
    }
    for (int64_t r = 0; r < P; r++) {
        float *row = pn + r * D;
        const float *old = bank->protos + r * D;
        if (col[r] == 0.0) {
            memcpy(row, old, (size_t)D * sizeof *row);
            vinv[r] = 0.0;
            continue;
        }
        double ss = 0.0;
        for (int64_t j = 0; j < D; j++) {
            double v = m * old[j] + (1.0 - m) * row[j];
            ss += v * v;
        }
        double nrm = sqrt(ss);
        if (!(nrm > NORM_EPS)) {
            /* The update cancels (momentum <= 0.5 and rows opposite to the prototype, e.g. any
             * such row when D = 1): n2 would make it a zero or shortened vector, which is no
             * direction and which a saved bank could not be loaded with. The row stays, and like
             * an unassigned one it is outside the gradient path. */
            memcpy(row, old, (size_t)D * sizeof *row);
            vinv[r] = 0.0;
            continue;
        }
        double inv = 1.0 / nrm;
        for (int64_t j = 0; j < D; j++)
            row[j] = (float)((m * old[j] + (1.0 - m) * row[j]) * inv);
        vinv[r] = inv;
    }
    if (!want_loss)
        goto commit;

    /* 6-7. second pass on the updated bank; W takes its values on the support of step 3 */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)P, (int)D, 1.0f, z, (int)D, pn, (int)D,
                0.0f, S, (int)P);
    if (red) {
        pood_sinkhorn_reduced(n, P, S, COSINE_BOUND, eps, iters, window, Q, scr, &dist);
        if (dist.status != PROTOOD_OK)
            return dist.status;
    } else {
        pood_sinkhorn(n, P, S, COSINE_BOUND, eps, iters, window, Q, scr);
    }
    normalise_support(&sh, Q, idx, wv);
    if (trace && trace->w)
        scatter_dense(&sh, idx, wv, trace->w);

    /* 8. MLE over all P prototypes; with a gradient wanted, row i of S becomes
     * (softmax(L_i) - W_i) / (n tau), the factor of dL/dz = that . P' */
    double inv_tau = 1.0 / tau, gscale = 1.0 / (n_all * tau), mle_sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float *si = S + i * P;
        const int64_t *ii = idx + i * s;
        const double *wi = wv + i * s;
        float mx = pood_max_f(P, si);
        double pos = 0.0;
        for (int64_t t = 0; t < s; t++)
            pos += wi[t] * si[ii[t]];
        float itau = (float)inv_tau;
        double sum = pood_exp_sum(P, si, mx, itau, grad ? si : NULL);
        if (grad) {
            float f = (float)(gscale / sum);
#pragma omp simd
            for (int64_t j = 0; j < P; j++)
                si[j] *= f;
            for (int64_t t = 0; t < s; t++)
                si[ii[t]] -= (float)(wi[t] * gscale);
        }
        mle_sum += (pos - mx) * inv_tau - log(sum);
    }
    if (red && (st = pood_reduce(func, red, "MLE loss sum", &mle_sum, 1)) != PROTOOD_OK)
        return st;   /* the last exchange: nothing has been written to grad or the bank yet */
    double mle = -mle_sum / n_all;
    if (grad)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)P, 1.0f, S, (int)P, pn,
                    (int)D, 0.0f, grad, (int)D);

    /* 9. prototype-contrastive loss on p̂ = n2(P') = P' (rows already at unit norm) */
    double pcon = 0.0;
    if (want_pcon) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)P, (int)D, 1.0f, pn, (int)D, 0.0f, G, (int)P);
        pood_mirror_upper(P, G);
        double inv_tp = 1.0 / tau_p, psum = 0.0;
        int has_pos = sh.supervised && sh.K > 1;
        int64_t K = sh.K;
        for (int64_t a = 0; a < P; a++) {
            float *ga = G + a * P;
            /* the reference's shift: the row maximum including the self-similarity, a constant */
            float c = pood_max_f(P, ga);
            /* log sum_{b != a} exp(G_ab), itself shifted by its own maximum so that a tiny tau_p
             * cannot underflow every term */
            float mo = pood_max_f(a, ga), mo2 = pood_max_f(P - a - 1, ga + a + 1);   /* over b != a */
            mo = mo2 > mo ? mo2 : mo;
            double pos = 0.0;
            int64_t first = (a / K) * K;
            if (has_pos) {
                for (int64_t b = first; b < first + K; b++)
                    if (b != a)
                        pos += ((double)ga[b] - c) * inv_tp;
                pos /= (double)(K - 1);
            }
            float itp = (float)inv_tp;
            float *out = grad ? ga : NULL;
            double sum = pood_exp_sum(a, ga, mo, itp, out) +
                         pood_exp_sum(P - a - 1, ga + a + 1, mo, itp, out ? out + a + 1 : NULL);
            if (grad) {
                /* dL/dG_ab = (softmax_ab - positive weight_ab) / P, the self term excluded */
                ga[a] = 0.0f;
                float f = (float)(1.0 / (sum * (double)P));
#pragma omp simd
                for (int64_t b = 0; b < P; b++)
                    ga[b] *= f;
                if (has_pos)
                    for (int64_t b = first; b < first + K; b++)
                        if (b != a)
                            ga[b] -= (float)(1.0 / ((double)(K - 1) * (double)P));
            }
            psum += pos - ((double)mo - c) * inv_tp - log(sum);
        }
        pcon = -psum / (double)P;
        if (grad) {
            /* g = dL_pcon/dp̂ = (C + C^T) P' / tau_p */
            pood_add_transpose(P, G);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)P, (int)D, (int)P, (float)inv_tp, G,
                        (int)P, pn, (int)D, 0.0f, gp, (int)D);
            /* back through p̂ = n2(n2(V)), V = m P + (1 - m) A^T z: row j of the EMA path is
             * lambda (1 - m) (I - P'_j P'_j^T) g_j / ||V_j||, zero for prototypes left unchanged */
            for (int64_t r = 0; r < P; r++) {
                float *gr = gp + r * D;
                const float *pr = pn + r * D;
                double dot = pood_dot_f(D, pr, gr);
                double f = lambda * (1.0 - m) * vinv[r];
                for (int64_t j = 0; j < D; j++)
                    gr[j] = (float)((gr[j] - pr[j] * dot) * f);
            }
            if (sh.dense) {
                scatter_dense(&sh, idx, av, Adense);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)P, 1.0f, Adense,
                            (int)P, gp, (int)D, 1.0f, grad, (int)D);
            } else {
                for (int64_t i = 0; i < n; i++)
                    for (int64_t t = 0; t < s; t++) {
                        float a = (float)av[i * s + t];
                        const float *v = gp + idx[i * s + t] * D;
                        float *gi = grad + i * D;
                        for (int64_t j = 0; j < D; j++)
                            gi[j] += a * v[j];
                    }
            }
        }
    }

    /* 10. */
    if (grad)
        chain_through_n2(n, D, z, hn, grad);
    if (losses) {
        losses[0] = mle + lambda * pcon;
        losses[1] = mle;
        losses[2] = pcon;
    }
commit:
    memcpy(bank->protos, pn, (size_t)P * (size_t)D * sizeof *pn);
    return PROTOOD_OK;
}

protood_status protood_palm_step(protood_bank *bank, int64_t n, const float *h, const int32_t *labels,
                                 double *losses, float *grad)
{
    return pood_palm_step(__func__, bank, n, h, labels, losses, grad, NULL);
}

protood_status protood_palm_assign(const protood_bank *bank, int64_t n, const float *h, const int32_t *labels,
                                   float *weights_out)
{
    protood_status st = validate(__func__, bank, n, h, labels);
    if (st != PROTOOD_OK)
        return st;
    if (!weights_out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "weights_out is NULL");
    palm_shape sh = make_shape(bank, n, labels);
    int64_t P = sh.P, D = sh.D, s = sh.s;
    layout l = {0, 0};
    size_t o_z = take(&l, n, D, sizeof(float));
    size_t o_hn = take(&l, n, 1, sizeof(double));
    size_t o_s = take(&l, n, P, sizeof(float));
    size_t o_q = take(&l, n, P, sizeof(double));
    size_t o_scr = take(&l, (int64_t)pood_sinkhorn_scratch_doubles(n, P), 1, sizeof(double));
    size_t o_idx = take(&l, n, s, sizeof(int64_t));
    size_t o_w = take(&l, n, s, sizeof(double));
    size_t o_tmp = take(&l, 1, P, sizeof(cand));
    if (l.overflow)
        return pood_fail(PROTOOD_E_SHAPE, __func__, "scratch for n = %lld rows x %lld prototypes overflows",
                         (long long)n, (long long)P);
    char *base = pood_malloc(l.size);
    if (!base)
        return pood_fail(PROTOOD_E_NOMEM, __func__, "no memory for %zu bytes of scratch", l.size);
    float *z = (float *)(base + o_z), *S = (float *)(base + o_s);
    double *hn = (double *)(base + o_hn), *Q = (double *)(base + o_q), *scr = (double *)(base + o_scr);
    int64_t *idx = (int64_t *)(base + o_idx);
    double *wv = (double *)(base + o_w);
    normalise_features(n, D, h, z, hn);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)P, (int)D, 1.0f, z, (int)D, bank->protos,
                (int)D, 0.0f, S, (int)P);
    pood_sinkhorn_window win = {labels, sh.K};
    pood_sinkhorn(n, P, S, COSINE_BOUND, bank->params[PROTOOD_BANK_SINKHORN_EPSILON],
                  (int32_t)bank->params[PROTOOD_BANK_SINKHORN_ITERS], labels ? &win : NULL, Q, scr);
    compute_support(&sh, labels, Q, idx, (cand *)(base + o_tmp));
    normalise_support(&sh, Q, idx, wv);
    scatter_dense(&sh, idx, wv, weights_out);
    free(base);
    return PROTOOD_OK;
}
