/* Reference steps for the tests (refsteps.h). */
#include "refsteps.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bank.h"
#include "palm.h"
#include "testutil.h"

/* Finite-difference step for an entry of row h: 1e-6, or 1e-18 for a row of norm below n2's
 * floor of 1e-12 (a magnitude-1e-30 row), where z = h / 1e-12 is linear in h and a step must
 * keep the row below the floor. */
static double fd_step(const double *h, int64_t d)
{
    double s = 0;
    for (int64_t j = 0; j < d; j++)
        s += h[j] * h[j];
    return sqrt(s) < 1e-12 ? 1e-18 : 1e-6;
}

double tu_max_abs_err(const float *got, const double *want, size_t n)
{
    double e = 0, scale = 1;
    for (size_t k = 0; k < n; k++) {
        if (fabs(want[k]) > scale)
            scale = fabs(want[k]);
        if (fabs(got[k] - want[k]) > e)
            e = fabs(got[k] - want[k]);
    }
    return e / scale;
}

static double logsumexp_strided(const double *v, int64_t count, int64_t stride)
{
    double m = -INFINITY, sum = 0;
    for (int64_t k = 0; k < count; k++)
        m = fmax(m, v[k * stride]);
    for (int64_t k = 0; k < count; k++)
        sum += exp(v[k * stride] - m);
    return m + log(sum);
}

/* SPEC.md §2 as the reference code computes it, in float64: Q = exp(S/eps), Q /= sum, T x
 * (columns to 1/p, rows to 1/n, each through F.normalize, which divides by max(sum, 1e-12)),
 * times n. Where float64 exp(S/eps) overflows the reference has no finite result and the library
 * promises the exact Sinkhorn instead: the floor never applies, and the iterations run in the log
 * domain (the first normalisation by the total is a common factor, which the column sums cancel).
 * No long double: valgrind computes it at float64 precision. */
void tu_ref_sinkhorn(int64_t n, int64_t p, const double *s, double eps, int iters, double *out)
{
    double *q = malloc((size_t)(n * p) * sizeof *q), max_x = -INFINITY, total = 0;
    for (int64_t k = 0; k < n * p; k++)
        max_x = fmax(max_x, s[k] / eps);
    if (max_x > 709.782712893384) {
        for (int64_t k = 0; k < n * p; k++)
            q[k] = s[k] / eps;
        for (int it = 0; it < iters; it++) {
            for (int64_t j = 0; j < p; j++) {
                double lse = logsumexp_strided(q + j, n, p) + log((double)p);
                for (int64_t i = 0; i < n; i++)
                    q[i * p + j] -= lse;
            }
            for (int64_t i = 0; i < n; i++) {
                double lse = logsumexp_strided(q + i * p, p, 1) + log((double)n);
                for (int64_t j = 0; j < p; j++)
                    q[i * p + j] -= lse;
            }
        }
        for (int64_t k = 0; k < n * p; k++)
            out[k] = exp(q[k]) * (double)n;
        free(q);
        return;
    }
    for (int64_t k = 0; k < n * p; k++) {
        q[k] = exp(s[k] / eps);
        total += q[k];
    }
    for (int64_t k = 0; k < n * p; k++)
        q[k] /= total;
    for (int it = 0; it < iters; it++) {
        for (int64_t j = 0; j < p; j++) {
            double c = 0;
            for (int64_t i = 0; i < n; i++)
                c += q[i * p + j];
            for (int64_t i = 0; i < n; i++)
                q[i * p + j] /= fmax(c, 1e-12) * (double)p;
        }
        for (int64_t i = 0; i < n; i++) {
            double r = 0;
            for (int64_t j = 0; j < p; j++)
                r += q[i * p + j];
            for (int64_t j = 0; j < p; j++)
                q[i * p + j] /= fmax(r, 1e-12) * (double)n;
        }
    }
    for (int64_t k = 0; k < n * p; k++)
        out[k] = q[k] * (double)n;
    free(q);
}

static void ref_n2_rows(int64_t n, int64_t d, const double *in, double *out)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++)
            s += in[i * d + j] * in[i * d + j];
        double nrm = fmax(sqrt(s), 1e-12);
        for (int64_t j = 0; j < d; j++)
            out[i * d + j] = in[i * d + j] / nrm;
    }
}

static void ref_n1_rows(int64_t n, int64_t p, double *x)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < p; j++)
            s += fabs(x[i * p + j]);
        for (int64_t j = 0; j < p; j++)
            x[i * p + j] /= fmax(s, 1e-12);
    }
}

void tu_ref_palm(const tu_palm_params *rp, int64_t n, const double *h, const int32_t *y, const float *p0,
                 double *losses, double *pout, tu_palm_frozen *fresh, const tu_palm_frozen *frozen)
{
    int64_t P = rp->C * rp->K, D = rp->D;
    double *z = malloc((size_t)(n * D) * sizeof *z), *pr = malloc((size_t)(P * D) * sizeof *pr);
    double *S = malloc((size_t)(n * P) * sizeof *S), *Q = malloc((size_t)(n * P) * sizeof *Q);
    double *A = malloc((size_t)(n * P) * sizeof *A), *W = malloc((size_t)(n * P) * sizeof *W);
    double *M = malloc((size_t)(n * P) * sizeof *M), *T = malloc((size_t)(n * P) * sizeof *T);
    double *pn = calloc((size_t)(P * D), sizeof *pn), *G = malloc((size_t)(P * P) * sizeof *G);
    double *shift = malloc((size_t)P * sizeof *shift);
    ref_n2_rows(n, D, h, z);
    for (int64_t k = 0; k < P * D; k++)
        pr[k] = p0[k];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < P; j++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++)
                s += z[i * D + d] * pr[j * D + d];
            S[i * P + j] = s;
            M[i * P + j] = !y || y[i] == j / rp->K;
        }
    int64_t k = rp->topk, cap = y ? rp->K : P;
    if (k == 0 || k > cap)
        k = cap;
    if (!frozen) {
        tu_ref_sinkhorn(n, P, S, rp->eps, rp->iters, Q);
        for (int64_t i = 0; i < n; i++) { /* top-k of M ⊙ Q1 over the whole row, by repeated argmax */
            for (int64_t j = 0; j < P; j++)
                T[i * P + j] = 0;
            for (int64_t t = 0; t < k; t++) {
                int64_t best = -1;
                for (int64_t j = 0; j < P; j++)
                    if (!T[i * P + j] && (best < 0 || M[i * P + j] * Q[i * P + j] > M[i * P + best] * Q[i * P + best]))
                        best = j;
                T[i * P + best] = 1;
            }
        }
        for (int64_t q = 0; q < n * P; q++)
            A[q] = T[q] * M[q] * Q[q];
        ref_n1_rows(n, P, A);
        for (int64_t j = 0; j < P; j++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++)
                s += A[i * P + j];
            for (int64_t i = 0; i < n; i++)
                A[i * P + j] /= fmax(s, 1e-12);
        }
    } else {
        memcpy(A, frozen->A, (size_t)(n * P) * sizeof *A);
    }
    for (int64_t j = 0; j < P; j++) { /* P' = n2(m P + (1 - m) A^T z) */
        int assigned = 0;
        double ss = 0;
        for (int64_t i = 0; i < n; i++)
            assigned |= A[i * P + j] != 0;
        for (int64_t d = 0; d < D; d++) {
            double u = 0;
            for (int64_t i = 0; i < n; i++)
                u += A[i * P + j] * z[i * D + d];
            pn[j * D + d] = rp->m * pr[j * D + d] + (1 - rp->m) * u;
            ss += pn[j * D + d] * pn[j * D + d];
        }
        /* unassigned, or an update that cancels (protood.h): the prototype keeps its row */
        if (!assigned || !(sqrt(ss) > 1e-12))
            for (int64_t d = 0; d < D; d++)
                pn[j * D + d] = pr[j * D + d];
    }
    ref_n2_rows(P, D, pn, pn);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < P; j++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++)
                s += z[i * D + d] * pn[j * D + d];
            S[i * P + j] = s;
        }
    if (!frozen) {
        tu_ref_sinkhorn(n, P, S, rp->eps, rp->iters, Q);
        for (int64_t q = 0; q < n * P; q++)
            W[q] = T[q] * M[q] * Q[q];
        ref_n1_rows(n, P, W);
    } else {
        memcpy(W, frozen->W, (size_t)(n * P) * sizeof *W);
    }
    if (frozen) /* L_mle sees P' as a constant */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < P; j++) {
                double s = 0;
                for (int64_t d = 0; d < D; d++)
                    s += z[i * D + d] * frozen->pn[j * D + d];
                S[i * P + j] = s;
            }
    double mle = 0;
    for (int64_t i = 0; i < n; i++) {
        double pos = 0, se = 0;
        for (int64_t j = 0; j < P; j++) {
            pos += W[i * P + j] * S[i * P + j] / rp->tau;
            se += exp(S[i * P + j] / rp->tau);
        }
        mle -= (pos - log(se)) / n;
    }
    double pcon = 0;
    if (rp->lambda > 0) {
        double *ph = malloc((size_t)(P * D) * sizeof *ph);
        ref_n2_rows(P, D, pn, ph);
        for (int64_t a = 0; a < P; a++) {
            double mx = -INFINITY;
            for (int64_t b = 0; b < P; b++) {
                double s = 0;
                for (int64_t d = 0; d < D; d++)
                    s += ph[a * D + d] * ph[b * D + d];
                G[a * P + b] = s / rp->tau_p;
                mx = fmax(mx, G[a * P + b]);
            }
            shift[a] = frozen ? frozen->shift[a] : mx;
        }
        for (int64_t a = 0; a < P; a++) {
            double npos = 0, pos = 0, neg = 0;
            for (int64_t b = 0; b < P; b++) {
                double g = G[a * P + b] - shift[a];
                if (b == a)
                    continue;
                neg += exp(g);
                if (y && b / rp->K == a / rp->K) {
                    npos += 1;
                    pos += g;
                }
            }
            pcon -= ((npos > 0 ? pos / npos : 0) - log(neg)) / P;
        }
        free(ph);
    }
    losses[0] = mle + rp->lambda * pcon;
    losses[1] = mle;
    losses[2] = pcon;
    if (pout)
        memcpy(pout, pn, (size_t)(P * D) * sizeof *pn);
    if (fresh) {
        memcpy(fresh->A, A, (size_t)(n * P) * sizeof *A);
        memcpy(fresh->W, W, (size_t)(n * P) * sizeof *W);
        memcpy(fresh->shift, shift, (size_t)P * sizeof *shift);
        memcpy(fresh->pn, pn, (size_t)(P * D) * sizeof *pn);
    }
    free(z);
    free(pr);
    free(S);
    free(Q);
    free(A);
    free(W);
    free(M);
    free(T);
    free(pn);
    free(G);
    free(shift);
}

protood_bank *tu_palm_bank(const tu_palm_params *rp, uint64_t seed)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, rp->C, rp->K, rp->D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_SPHERE, seed), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_MOMENTUM, rp->m), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_TEMPERATURE, rp->tau), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_SINKHORN_EPSILON, rp->eps), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_SINKHORN_ITERS, rp->iters), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_TOPK, rp->topk), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_LAMBDA_PCON, rp->lambda), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_PCON_TEMPERATURE, rp->tau_p), PROTOOD_OK);
    return b;
}

tu_step_check tu_check_palm_step(const tu_palm_params *rp, protood_bank *b, int64_t n, const float *h,
                                 const int32_t *y)
{
    int64_t P = rp->C * rp->K, D = rp->D;
    float *p0 = malloc((size_t)(P * D) * sizeof *p0);
    ck_assert_int_eq(protood_bank_get_prototypes(b, p0), PROTOOD_OK);

    double losses[3], want[3];
    float *grad = malloc((size_t)(n * D) * sizeof *grad), *a = malloc((size_t)(n * P) * sizeof *a);
    float *w = malloc((size_t)(n * P) * sizeof *w);
    pood_palm_trace tr = {NULL, a, w};
    ck_assert_msg(pood_palm_step("test", b, n, h, y, losses, grad, &tr) == PROTOOD_OK, "%s", protood_last_error());

    double *hd = malloc((size_t)(n * D) * sizeof *hd), *pout = malloc((size_t)(P * D) * sizeof *pout);
    for (int64_t k = 0; k < n * D; k++)
        hd[k] = h[k];
    tu_palm_frozen fz = {malloc((size_t)(n * P) * sizeof(double)), malloc((size_t)(n * P) * sizeof(double)),
                         malloc((size_t)P * sizeof(double)), malloc((size_t)(P * D) * sizeof(double))};
    tu_ref_palm(rp, n, hd, y, p0, want, pout, &fz, NULL);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(fabs(losses[k] - want[k]) <= 1e-5 * fabs(want[k]) + 1e-9,
                      "loss[%d] = %.12g, reference %.12g (all: %.9g %.9g %.9g vs %.9g %.9g %.9g)", k, losses[k],
                      want[k], losses[0], losses[1], losses[2], want[0], want[1], want[2]);
    tu_assert_close_f32_f64(b->protos, pout, (size_t)(P * D), 1e-5, "prototypes");
    tu_assert_close_f32_f64(a, fz.A, (size_t)(n * P), 1e-5, "A");
    tu_assert_close_f32_f64(w, fz.W, (size_t)(n * P), 1e-5, "W");

    /* central differences of the total loss and of lambda * L_pcon alone */
    double *fd = malloc((size_t)(n * D) * sizeof *fd);
    tu_step_check c = {0, 0, 0};
    for (int64_t k = 0; k < n * D; k++) {
        double lp[3], lm[3], keep = hd[k], step = fd_step(hd + k / D * D, D);
        hd[k] = keep + step;
        tu_ref_palm(rp, n, hd, y, p0, lp, NULL, NULL, &fz);
        hd[k] = keep - step;
        tu_ref_palm(rp, n, hd, y, p0, lm, NULL, NULL, &fz);
        hd[k] = keep;
        fd[k] = (lp[0] - lm[0]) / (2 * step);
        c.path = fmax(c.path, fabs(rp->lambda * (lp[2] - lm[2]) / (2 * step)));
        c.gmax = fmax(c.gmax, fabs(fd[k]));
    }
    tu_assert_close_f32_f64(grad, fd, (size_t)(n * D), 1e-4, "grad vs finite differences");
    c.err = tu_max_abs_err(grad, fd, (size_t)(n * D));
    printf("fd %s C=%lld K=%lld D=%lld k=%d m=%g lambda=%g eps=%g: max |grad| %.3g, pcon path %.3g, max err %.2e\n",
           y ? "supervised" : "unsupervised", (long long)rp->C, (long long)rp->K, (long long)D, rp->topk, rp->m,
           rp->lambda, rp->eps, c.gmax, c.path, c.err);

    free(fz.A);
    free(fz.W);
    free(fz.shift);
    free(fz.pn);
    free(fd);
    free(hd);
    free(pout);
    free(grad);
    free(a);
    free(w);
    free(p0);
    return c;
}

/* ---- CIDER ---- */

void tu_ref_cider(const tu_cider_params *rp, int64_t n, const double *h, const int32_t *y, const float *p0,
                  double *losses, double *mu_out, const double *mu_const)
{
    int64_t C = rp->C, D = rp->D;
    double *z = malloc((size_t)(n * D) * sizeof *z), *mu = malloc((size_t)(C * D) * sizeof *mu);
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t d = 0; d < D; d++)
            s += h[i * D + d] * h[i * D + d];
        for (int64_t d = 0; d < D; d++)
            z[i * D + d] = h[i * D + d] / fmax(sqrt(s), 1e-12);
    }
    for (int64_t k = 0; k < C * D; k++)
        mu[k] = p0[k];
    for (int64_t i = 0; i < n; i++) { /* for j in range(len(features)): prototypes[y_j] = normalize(...) */
        double *p = mu + y[i] * D, s = 0, *v = malloc((size_t)D * sizeof *v);
        for (int64_t d = 0; d < D; d++) {
            v[d] = p[d] * rp->m + z[i * D + d] * (1 - rp->m);
            s += v[d] * v[d];
        }
        if (sqrt(s) > 1e-12) /* an update that cancels is skipped (protood.h) */
            for (int64_t d = 0; d < D; d++)
                p[d] = v[d] / sqrt(s);
        free(v);
    }
    double dis = 0;
    for (int64_t a = 0; C > 1 && a < C; a++) { /* log((mask * exp(logits)).sum(1) / mask.sum(1)) */
        double s = 0;
        for (int64_t b = 0; b < C; b++) {
            if (b == a)
                continue;
            double dot = 0;
            for (int64_t d = 0; d < D; d++)
                dot += mu[a * D + d] * mu[b * D + d];
            s += exp(dot / rp->tau);
        }
        dis += log(s / (double)(C - 1)) / C;
    }
    dis *= rp->tau / rp->b_dis; /* 0 for one class, which has nothing to disperse from (protood.h) */
    const double *pc = mu_const ? mu_const : mu;
    double comp = 0;
    for (int64_t i = 0; i < n; i++) {
        double se = 0, own = 0;
        for (int64_t c = 0; c < C; c++) {
            double dot = 0;
            for (int64_t d = 0; d < D; d++)
                dot += z[i * D + d] * pc[c * D + d];
            se += exp(dot / rp->tau);
            if (c == y[i])
                own = dot / rp->tau;
        }
        comp += own - log(se);
    }
    comp *= -(rp->tau / rp->b_comp) / n;
    losses[0] = rp->w * comp + dis;
    losses[1] = comp;
    losses[2] = dis;
    if (mu_out)
        memcpy(mu_out, mu, (size_t)(C * D) * sizeof *mu);
    free(z);
    free(mu);
}

protood_bank *tu_cider_bank(const tu_cider_params *rp, uint64_t seed)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, rp->C, 1, rp->D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_SPHERE, seed), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_MOMENTUM, rp->m), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_TEMPERATURE, rp->tau), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_COMP_WEIGHT, rp->w), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_DIS_BASE_TEMPERATURE, rp->b_dis), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_COMP_BASE_TEMPERATURE, rp->b_comp), PROTOOD_OK);
    return b;
}

tu_step_check tu_check_cider_step(const tu_cider_params *rp, protood_bank *b, int64_t n, const float *h,
                                  const int32_t *y)
{
    int64_t C = rp->C, D = rp->D;
    float *p0 = malloc((size_t)(C * D) * sizeof *p0);
    ck_assert_int_eq(protood_bank_get_prototypes(b, p0), PROTOOD_OK);
    double losses[3], want[3];
    float *grad = malloc((size_t)(n * D) * sizeof *grad);
    ck_assert_msg(protood_cider_step(b, n, h, y, losses, grad) == PROTOOD_OK, "%s", protood_last_error());
    double *hd = malloc((size_t)(n * D) * sizeof *hd), *mu = malloc((size_t)(C * D) * sizeof *mu);
    for (int64_t k = 0; k < n * D; k++)
        hd[k] = h[k];
    tu_ref_cider(rp, n, hd, y, p0, want, mu, NULL);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(fabs(losses[k] - want[k]) <= 1e-5 * fabs(want[k]) + (want[k] == 0 ? 1e-12 : 0),
                      "loss[%d] = %.12g, reference %.12g", k, losses[k], want[k]);
    tu_assert_close_f32_f64(b->protos, mu, (size_t)(C * D), 1e-5, "prototypes");

    double *fd = malloc((size_t)(n * D) * sizeof *fd);
    tu_step_check c = {0, 0, 0};
    for (int64_t k = 0; k < n * D; k++) {
        double lp[3], lm[3], keep = hd[k], step = fd_step(hd + k / D * D, D);
        hd[k] = keep + step;
        tu_ref_cider(rp, n, hd, y, p0, lp, NULL, mu);
        hd[k] = keep - step;
        tu_ref_cider(rp, n, hd, y, p0, lm, NULL, mu);
        hd[k] = keep;
        fd[k] = (lp[0] - lm[0]) / (2 * step);
        c.path = fmax(c.path, fabs((lp[2] - lm[2]) / (2 * step)));
        c.gmax = fmax(c.gmax, fabs(fd[k]));
    }
    tu_assert_close_f32_f64(grad, fd, (size_t)(n * D), 1e-4, "grad vs finite differences");
    c.err = tu_max_abs_err(grad, fd, (size_t)(n * D));
    printf("fd C=%lld D=%lld n=%lld m=%g w=%g: max |grad| %.3g, dispersion path %.3g, max err %.2e\n",
           (long long)C, (long long)D, (long long)n, rp->m, rp->w, c.gmax, c.path, c.err);
    free(fd);
    free(hd);
    free(mu);
    free(grad);
    free(p0);
    return c;
}
