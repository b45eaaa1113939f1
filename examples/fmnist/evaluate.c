/* Evaluation as the papers do it: embed with the penultimate layer (the encoder output, not the
 * projection head), fit the scorers on the in-distribution training embeddings, score the ID test
 * images and each OOD set, and report FPR at 95% TPR and AUROC with ID as the positive class. */
#include "fmnist.h"

#include <math.h>
#include <protood/protood.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(protood_status status, const char *call)
{
    if (status == PROTOOD_OK)
        return 0;
    return fm_fail("%s failed: %s (%s)", call, protood_last_error(), protood_status_string(status));
}

/* Embeddings of a whole set, in batches of the network's buffer size. */
static void embed_set(fm_net *net, const fm_set *set, float *x, float *out)
{
    int64_t dim = fm_net_embed_dim(net);
    for (int64_t first = 0; first < set->n; first += net->max_batch) {
        int64_t count = set->n - first < net->max_batch ? set->n - first : net->max_batch;
        fm_standardise(set, first, count, x);
        memcpy(out + first * dim, fm_net_embed(net, count, x), (size_t)(count * dim) * sizeof(float));
    }
}

/* Maximum softmax probability of a classifier (Hendrycks & Gimpel), the classic baseline score. */
static void msp_set(fm_net *net, const fm_set *set, float *x, float *scores)
{
    int64_t classes = net->layer[net->n_layers - 1].out;
    for (int64_t first = 0; first < set->n; first += net->max_batch) {
        int64_t count = set->n - first < net->max_batch ? set->n - first : net->max_batch;
        fm_standardise(set, first, count, x);
        const float *logits = fm_net_forward(net, count, x);
        for (int64_t i = 0; i < count; i++) {
            const float *z = logits + i * classes;
            float top = z[0];
            for (int64_t c = 1; c < classes; c++)
                top = z[c] > top ? z[c] : top;
            double sum = 0.0;
            for (int64_t c = 0; c < classes; c++)
                sum += exp((double)(z[c] - top));
            scores[first + i] = (float)(1.0 / sum); /* the largest probability: exp(0) / sum */
        }
    }
}

static int add_row(fm_table *table, const char *method, const char *scorer, int64_t n_in,
                   const float *s_in, const fm_eval_sets *sets, float *const *s_out)
{
    if (table->n_rows == FM_MAX_ROWS)
        return fm_fail("internal: result table full");
    fm_row *row = &table->row[table->n_rows];
    snprintf(row->name, sizeof row->name, "%s+%s", method, scorer);
    for (int o = 0; o < FM_N_OOD; o++) {
        int64_t n_out = sets->ood[o]->n;
        if (check(protood_fpr_at_tpr(n_in, s_in, n_out, s_out[o], 0.95, PROTOOD_FPR_ROC,
                                     &row->fpr[o]), "protood_fpr_at_tpr") != 0 ||
            check(protood_auroc(n_in, s_in, n_out, s_out[o], &row->auroc[o]), "protood_auroc") != 0)
            return -1;
    }
    table->n_rows++;
    return 0;
}

/* Fit one scorer on the training embeddings, score the test set and every OOD set. */
static int run_scorer(int32_t kind, int64_t knn_k, int64_t dim, const fm_eval_sets *sets,
                      float *const *embedded, float *s_in, float *const *s_out)
{
    protood_scorer *scorer = NULL;
    int status = -1;
    if (check(protood_scorer_create(&scorer, kind, dim), "protood_scorer_create") != 0)
        return -1;
    if (kind == PROTOOD_SCORER_KNN &&
        check(protood_scorer_set_param(scorer, PROTOOD_SCORER_K, (double)knn_k),
              "protood_scorer_set_param(K)") != 0)
        goto done;
    if (kind == PROTOOD_SCORER_MAHALANOBIS
            ? check(protood_scorer_fit(scorer, sets->train->n, embedded[0], sets->train->labels, FM_N_IN),
                    "protood_scorer_fit")
            : check(protood_scorer_fit(scorer, sets->train->n, embedded[0], NULL, 0),
                    "protood_scorer_fit"))
        goto done;
    if (check(protood_scorer_score(scorer, sets->test->n, embedded[1], s_in), "protood_scorer_score"))
        goto done;
    for (int o = 0; o < FM_N_OOD; o++)
        if (check(protood_scorer_score(scorer, sets->ood[o]->n, embedded[2 + o], s_out[o]),
                  "protood_scorer_score"))
            goto done;
    status = 0;
done:
    protood_scorer_free(scorer);
    return status;
}

int fm_evaluate(fm_method method, fm_net *net, const fm_eval_sets *sets, int64_t knn_k,
                fm_table *table)
{
    const char *name = fm_method_names[method];
    int64_t dim = fm_net_embed_dim(net);
    const fm_set *all[2 + FM_N_OOD] = {sets->train, sets->test};
    for (int o = 0; o < FM_N_OOD; o++)
        all[2 + o] = sets->ood[o];

    float *embedded[2 + FM_N_OOD] = {0};
    float *s_in = NULL, *s_out[FM_N_OOD] = {0};
    float *x = fm_alloc((size_t)net->max_batch, FM_PIXELS * sizeof(float), "evaluation batch");
    int status = -1;
    if (!x)
        goto done;
    for (int i = 0; i < 2 + FM_N_OOD; i++) {
        if (!(embedded[i] = fm_alloc((size_t)all[i]->n, (size_t)dim * sizeof(float), all[i]->name)))
            goto done;
        embed_set(net, all[i], x, embedded[i]);
    }
    if (!(s_in = fm_alloc((size_t)sets->test->n, sizeof(float), "scores")))
        goto done;
    for (int o = 0; o < FM_N_OOD; o++)
        if (!(s_out[o] = fm_alloc((size_t)sets->ood[o]->n, sizeof(float), "scores")))
            goto done;

    if (method == FM_CE) {
        msp_set(net, sets->test, x, s_in);
        for (int o = 0; o < FM_N_OOD; o++)
            msp_set(net, sets->ood[o], x, s_out[o]);
        if (add_row(table, name, "MSP", sets->test->n, s_in, sets, s_out) != 0)
            goto done;
    }
    if (run_scorer(PROTOOD_SCORER_KNN, knn_k, dim, sets, embedded, s_in, s_out) != 0 ||
        add_row(table, name, "KNN", sets->test->n, s_in, sets, s_out) != 0 ||
        run_scorer(PROTOOD_SCORER_MAHALANOBIS, knn_k, dim, sets, embedded, s_in, s_out) != 0 ||
        add_row(table, name, "Maha", sets->test->n, s_in, sets, s_out) != 0)
        goto done;
    status = 0;
done:
    free(x);
    free(s_in);
    for (int i = 0; i < 2 + FM_N_OOD; i++)
        free(embedded[i]);
    for (int o = 0; o < FM_N_OOD; o++)
        free(s_out[o]);
    return status;
}

void fm_table_print(const fm_table *table)
{
    printf("%-14s", "");
    for (int o = 0; o < FM_N_OOD; o++)
        printf("%17s", table->ood_names[o]);
    printf("%17s\n%-14s", "average", "method+scorer");
    for (int o = 0; o <= FM_N_OOD; o++)
        printf("    FPR95   AUROC");
    printf("\n");
    for (int r = 0; r < table->n_rows; r++) {
        const fm_row *row = &table->row[r];
        double fpr_sum = 0.0, auroc_sum = 0.0;
        printf("%-14s", row->name);
        for (int o = 0; o < FM_N_OOD; o++) {
            printf("   %6.2f  %6.2f", 100.0 * row->fpr[o], 100.0 * row->auroc[o]);
            fpr_sum += row->fpr[o];
            auroc_sum += row->auroc[o];
        }
        printf("   %6.2f  %6.2f\n", 100.0 * fpr_sum / FM_N_OOD, 100.0 * auroc_sum / FM_N_OOD);
    }
}
