/* CIDER training step (SPEC.md §4): sequential EMA of one prototype per class over the batch rows,
 * dispersion over all class prototypes, compactness against the updated prototypes, and the
 * analytic gradient with respect to the raw features.
 *
 * The dispersion loss reaches the features only through the chain of sequential updates
 * p_t = n2(m p_{t-1} + (1 - m) z_t) of each class. The forward pass keeps every p_t and
 * ||m p_{t-1} + (1 - m) z_t|| (n rows), so the backward pass is one reverse sweep over the rows:
 * with J_t = (I - p_t p_t^T) / ||.||, the row gets (1 - m) J_t gbar and its class carries m J_t gbar
 * on to its previous update. Each class's chain is visited in reverse order because the rows are. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bank.h"
#include "blas.h"
#include "errors.h"
#include "vecmath.h"
#include "palm.h"
#include "validate.h"

#define NORM_EPS 1e-12   /* n2 of SPEC.md divides by max(norm, 1e-12) */

static size_t take(size_t *size, int *overflow, int64_t a, int64_t b, size_t elem)
{
    size_t at = (*size + 63) & ~(size_t)63, ab, bytes;
    if (at < *size || a < 0 || b < 0 || __builtin_mul_overflow((size_t)a, (size_t)b, &ab) ||
        __builtin_mul_overflow(ab, elem, &bytes) || __builtin_add_overflow(at, bytes, size))
        *overflow = 1;
    return at;
}

/* Everything the step checks before touching anything. */
static protood_status check_args(const char *func, const protood_bank *bank, int64_t n, const float *h,
                                 const int32_t *labels)
{
    protood_status st;
    size_t bytes;
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "bank is NULL");
    if (bank->protos_per_class != 1)
        return pood_fail(PROTOOD_E_STATE, func,
                         "bank has protos_per_class = %lld; CIDER keeps one prototype per class (K = 1)",
                         (long long)bank->protos_per_class);
    if ((st = pood_check_count(func, "n", n)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n, bank->dim, sizeof(float), &bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n, bank->n_classes, sizeof(float), &bytes)) != PROTOOD_OK ||
        (st = pood_check_rows(func, "h", n, bank->dim, h)) != PROTOOD_OK ||
        (st = pood_check_labels(func, n, labels, bank->n_classes)) != PROTOOD_OK)
        return st;
    if (n > INT32_MAX || bank->n_classes > INT32_MAX || bank->dim > INT32_MAX)
        return pood_fail(PROTOOD_E_SHAPE, func, "n = %lld or the bank's %lld x %lld exceeds the BLAS int range",
                         (long long)n, (long long)bank->n_classes, (long long)bank->dim);
    return PROTOOD_OK;
}

static protood_status cider_step(const char *func, protood_bank *bank, int64_t n, const float *h,
                                 const int32_t *labels, double *losses, float *grad)
{
    protood_status st;

    int64_t C = bank->n_classes, D = bank->dim;
    double m = bank->params[PROTOOD_BANK_MOMENTUM];
    double tau = bank->params[PROTOOD_BANK_TEMPERATURE];
    double w = bank->params[PROTOOD_BANK_COMP_WEIGHT];
    double b_dis = bank->params[PROTOOD_BANK_DIS_BASE_TEMPERATURE];
    double b_comp = bank->params[PROTOOD_BANK_COMP_BASE_TEMPERATURE];
    int want_loss = losses != NULL || grad != NULL;

    size_t size = 0;
    int overflow = 0;
    size_t o_z = take(&size, &overflow, n, D, sizeof(float));
    size_t o_hn = take(&size, &overflow, n, 1, sizeof(double));
    size_t o_mu = take(&size, &overflow, C, D, sizeof(float));
    size_t o_hist = take(&size, &overflow, grad ? n : 0, D, sizeof(float));  /* p_t after row t's update */
    size_t o_vn = take(&size, &overflow, n, 1, sizeof(double));              /* ||m p_{t-1} + (1-m) z_t|| */
    size_t o_s = take(&size, &overflow, n, C, sizeof(float));
    size_t o_gd = take(&size, &overflow, C, C, sizeof(float));
    size_t o_g = take(&size, &overflow, C, D, sizeof(float));
    size_t o_gbar = take(&size, &overflow, C, D, sizeof(double));
    if (overflow)
        return pood_fail(PROTOOD_E_SHAPE, func, "workspace for n = %lld rows overflows", (long long)n);
    void *wsp;
    if ((st = pood_bank_workspace(bank, func, size, &wsp)) != PROTOOD_OK)
        return st;
    char *base = wsp;
    float *z = (float *)(base + o_z), *mu = (float *)(base + o_mu), *hist = (float *)(base + o_hist);
    float *S = (float *)(base + o_s), *Gd = (float *)(base + o_gd), *g = (float *)(base + o_g);
    double *hn = (double *)(base + o_hn), *vn = (double *)(base + o_vn), *gbar = (double *)(base + o_gbar);

    for (int64_t i = 0; i < n; i++) {
        hn[i] = sqrt(pood_dot_f(D, h + i * D, h + i * D));
        double inv = 1.0 / (hn[i] > NORM_EPS ? hn[i] : NORM_EPS);
        for (int64_t j = 0; j < D; j++)
            z[i * D + j] = (float)(h[i * D + j] * inv);
    }

    /* 1. sequential EMA, in the order of the rows */
    memcpy(mu, bank->protos, (size_t)C * (size_t)D * sizeof *mu);
    for (int64_t i = 0; i < n; i++) {
        float *p = mu + (int64_t)labels[i] * D;
        const float *zi = z + i * D;
        double ss = 0.0;
        for (int64_t j = 0; j < D; j++) {
            double v = m * p[j] + (1.0 - m) * zi[j];
            ss += v * v;
        }
        vn[i] = sqrt(ss);
        /* An update that cancels (m <= 0.5 and z_t opposite to p_{t-1}, e.g. any such row when
         * D = 1) is skipped: n2 would leave a zero or shortened prototype, no direction, and a
         * bank that could not be loaded once saved. Then p_t = p_{t-1} and z_t gets no gradient
         * through it. */
        if (vn[i] > NORM_EPS) {
            double inv = 1.0 / vn[i];
            for (int64_t j = 0; j < D; j++)
                p[j] = (float)((m * p[j] + (1.0 - m) * zi[j]) * inv);
        }
        if (grad)
            memcpy(hist + i * D, p, (size_t)D * sizeof *p);
    }
    if (!want_loss)
        goto commit;

    /* 2. dispersion over all C prototypes: (tau/b_dis) mean_i log mean_{j != i} exp(mu_i.mu_j / tau).
     * Each log-sum-exp is shifted by its maximum (the reference does not need to at tau = 0.1 on
     * unit vectors; a small tau would overflow without it). One class has no other prototype to
     * disperse from: the loss is 0 there (the reference's mean over nothing is NaN). */
    double dis = 0.0;
    int dis_active = C > 1;
    if (dis_active) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)C, (int)D, 1.0f, mu, (int)D, 0.0f, Gd, (int)C);
        pood_mirror_upper(C, Gd);
        double inv_tau = 1.0 / tau, dsum = 0.0;
        for (int64_t a = 0; a < C; a++) {
            float *ga = Gd + a * C;
            double mo = -INFINITY;
            for (int64_t b = 0; b < C; b++)
                if (b != a && ga[b] > mo)
                    mo = ga[b];
            double sum = 0.0;
            for (int64_t b = 0; b < C; b++)
                if (b != a)
                    sum += exp(((double)ga[b] - mo) * inv_tau);
            dsum += mo * inv_tau + log(sum) - log((double)(C - 1));
            if (grad) {
                /* dL_dis / d(mu_a . mu_b) = softmax_ab / (b_dis C) */
                double f = 1.0 / (sum * b_dis * (double)C);
                for (int64_t b = 0; b < C; b++)
                    ga[b] = b == a ? 0.0f : (float)(exp(((double)ga[b] - mo) * inv_tau) * f);
            }
        }
        dis = tau / b_dis * dsum / (double)C;
    }

    /* 3. compactness against the updated prototypes (constants here); with a gradient wanted, row
     * i of S becomes w (softmax_i - onehot(y_i)) / (b_comp n), the factor of dL/dz = that . mu */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)C, (int)D, 1.0f, z, (int)D, mu, (int)D, 0.0f,
                S, (int)C);
    double inv_tau = 1.0 / tau, gscale = w / (b_comp * (double)n), csum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float *si = S + i * C;
        double mx = pood_max_f(C, si);
        double own = ((double)si[labels[i]] - mx) * inv_tau;
        double sum = pood_exp_sum(C, si, (float)mx, (float)inv_tau, grad ? si : NULL);
        csum += own - log(sum);
        if (grad) {
            float f = (float)(gscale / sum);
            for (int64_t c = 0; c < C; c++)
                si[c] *= f;
            si[labels[i]] -= (float)gscale;
        }
    }
    double comp = -(tau / b_comp) * csum / (double)n;

    if (grad) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)C, 1.0f, S, (int)C, mu, (int)D,
                    0.0f, grad, (int)D);
        if (dis_active) {
            /* gbar = dL_dis/dmu (final prototypes) = (Gd + Gd^T) mu, then the reverse sweep */
            pood_add_transpose(C, Gd);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C, (int)D, (int)C, 1.0f, Gd, (int)C, mu,
                        (int)D, 0.0f, g, (int)D);
            for (int64_t k = 0; k < C * D; k++)
                gbar[k] = g[k];
            for (int64_t i = n - 1; i >= 0; i--) {
                double *gb = gbar + (int64_t)labels[i] * D;
                const float *p = hist + i * D;
                float *gi = grad + i * D;
                if (!(vn[i] > NORM_EPS))
                    continue; /* a skipped update: p_t = p_{t-1} passes gbar on unchanged */
                double dot = 0.0;
                for (int64_t j = 0; j < D; j++)
                    dot += p[j] * gb[j];
                double inv = 1.0 / vn[i];
                for (int64_t j = 0; j < D; j++)
                    gb[j] = (gb[j] - p[j] * dot) * inv;
                for (int64_t j = 0; j < D; j++) {
                    gi[j] += (float)((1.0 - m) * gb[j]);
                    gb[j] *= m;
                }
            }
        }
        /* through z = n2(h) */
        for (int64_t i = 0; i < n; i++) {
            float *gi = grad + i * D;
            const float *zi = z + i * D;
            if (hn[i] > NORM_EPS) {
                double dot = pood_dot_f(D, zi, gi);
                double inv = 1.0 / hn[i];
                for (int64_t j = 0; j < D; j++)
                    gi[j] = (float)((gi[j] - zi[j] * dot) * inv);
            } else {
                for (int64_t j = 0; j < D; j++)
                    gi[j] = (float)(gi[j] / NORM_EPS);
            }
        }
    }
    if (losses) {
        losses[0] = w * comp + dis;
        losses[1] = comp;
        losses[2] = dis;
    }
commit:
    memcpy(bank->protos, mu, (size_t)C * (size_t)D * sizeof *mu);
    return PROTOOD_OK;
}

/* With a reducer (docs/distributed.md): the sequential EMA runs over the global batch in rank
 * order, so the ranks' rows are gathered (an allgather through the sum-allreduce: every rank
 * writes its rows into its slice of a zeroed buffer) and every rank runs the whole step on them,
 * keeping the gradient of its own rows. Exchanges: the row counts, an allocation check, and the
 * N x (dim + 1) rows with their labels. */
static protood_status cider_step_dist(const char *func, protood_bank *bank, int64_t n, const float *h,
                                      const int32_t *labels, double *losses, float *grad)
{
    const pood_reducer *red = &bank->reducer;
    const int64_t R = red->size, D = bank->dim;
    protood_status st = check_args(func, bank, n, h, labels);
    double *counts = pood_malloc((size_t)(R + 1) * sizeof *counts);
    if (!counts) /* no exchange is possible without it; the other ranks are left waiting */
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld row counts", (long long)R);
    for (int64_t r = 0; r <= R; r++)
        counts[r] = 0.0;
    counts[1 + red->rank] = (double)n;
    if ((st = pood_reduce_agree(func, red, st, counts, R)) != PROTOOD_OK) {
        free(counts);
        return st;
    }
    int64_t total = 0, first = 0;
    for (int64_t r = 0; r < R; r++) {
        if (r == red->rank)
            first = total;
        total += (int64_t)counts[1 + r];
    }
    free(counts);

    size_t cells, bytes;
    double *buf = NULL;
    float *hall = NULL, *gall = NULL;
    int32_t *lall = NULL;
    if (total > INT32_MAX) /* the same on every rank */
        st = pood_fail(PROTOOD_E_SHAPE, func, "the global batch of %lld rows exceeds the BLAS int range",
                       (long long)total);
    else if ((st = pood_checked_size(func, total, D + 1, sizeof(double), &cells)) == PROTOOD_OK &&
        (st = pood_checked_size(func, total, D, sizeof(float), &bytes)) == PROTOOD_OK) {
        buf = pood_calloc(1, cells);
        hall = pood_malloc(bytes);
        gall = grad ? pood_malloc(bytes) : NULL;
        lall = pood_malloc((size_t)total * sizeof *lall);
        if (!buf || !hall || (grad && !gall) || !lall)
            st = pood_fail(PROTOOD_E_NOMEM, func, "no memory to gather %lld rows of %lld features", (long long)total,
                           (long long)D);
    }
    double flag[1];
    if ((st = pood_reduce_agree(func, red, st, flag, 0)) != PROTOOD_OK)
        goto done;
    for (int64_t i = 0; i < n; i++) {
        double *row = buf + (first + i) * (D + 1);
        for (int64_t j = 0; j < D; j++)
            row[j] = h[i * D + j];
        row[D] = labels[i];
    }
    if ((st = pood_reduce(func, red, "gathering the batch", buf, total * (D + 1))) != PROTOOD_OK)
        goto done;
    /* float -> double -> float and small integers round-trip exactly: every rank now holds the
     * bits of the concatenated batch */
    for (int64_t i = 0; i < total; i++) {
        const double *row = buf + i * (D + 1);
        for (int64_t j = 0; j < D; j++)
            hall[i * D + j] = (float)row[j];
        lall[i] = (int32_t)row[D];
    }
    double loss_all[3];
    if ((st = cider_step(func, bank, total, hall, lall, loss_all, gall)) != PROTOOD_OK)
        goto done;
    if (losses)
        memcpy(losses, loss_all, sizeof loss_all);
    if (grad)
        memcpy(grad, gall + first * D, (size_t)n * (size_t)D * sizeof *grad);
done:
    free(buf);
    free(hall);
    free(gall);
    free(lall);
    return st;
}

protood_status protood_cider_step(protood_bank *bank, int64_t n, const float *h, const int32_t *labels,
                                  double *losses, float *grad)
{
    if (bank && bank->reducer.fn)
        return cider_step_dist(__func__, bank, n, h, labels, losses, grad);
    protood_status st = check_args(__func__, bank, n, h, labels);
    if (st != PROTOOD_OK)
        return st;
    return cider_step(__func__, bank, n, h, labels, losses, grad);
}
