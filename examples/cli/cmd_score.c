/* protood score: fit (or load) a scorer on training features, score the in-distribution test set
 * and every OOD set, and report FPR95 / AUROC / AUPR. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define STREAM_BATCH 4096   /* rows per callback: the granularity of the progress bar */

/* The streaming calls pull rows in batches from memory, which lets the tool draw progress. */
typedef struct feed {
    const float *rows;
    const int32_t *labels;
    int64_t dim;
} feed;

static int32_t feed_rows(void *user, int64_t first, int64_t count, float *rows_out, int32_t *labels_out)
{
    const feed *f = user;
    memcpy(rows_out, f->rows + first * f->dim, (size_t)(count * f->dim) * sizeof(float));
    if (labels_out && f->labels)
        memcpy(labels_out, f->labels + first, (size_t)count * sizeof(int32_t));
    cli_progress_update(first + count);
    return 0;
}

static float *score_set(const protood_scorer *scorer, const cli_matrix *m, int64_t dim, const char *label)
{
    if (m->cols != dim)
        cli_die(EXIT_DATA, "%s: dimension %lld does not match the training features (%lld)", m->path,
                (long long)m->cols, (long long)dim);
    float *scores = malloc((size_t)m->rows * sizeof *scores);
    if (!scores)
        cli_die(EXIT_DATA, "out of memory");
    feed f = {m->data, NULL, dim};
    cli_progress_start(label, m->rows);
    protood_status st = protood_scorer_score_stream(scorer, m->rows, STREAM_BATCH, feed_rows, &f, scores);
    cli_progress_end();
    if (st != PROTOOD_OK)
        cli_die_lib(m->path, st);
    return scores;
}

static protood_scorer *fit_scorer(const cli_score_args *a, int64_t *dim)
{
    protood_scorer *scorer = NULL;
    protood_status st;
    if (a->kind == PROTOOD_SCORER_PROTOTYPE) {
        protood_bank *bank;
        if ((st = protood_bank_load(&bank, a->bank)) != PROTOOD_OK)
            cli_die_lib(a->bank, st);
        protood_bank_shape(bank, NULL, NULL, dim);
        if ((st = protood_scorer_create(&scorer, a->kind, *dim)) != PROTOOD_OK ||
            (st = protood_scorer_set_param(scorer, PROTOOD_SCORER_NORMALIZE, !a->no_normalize)) != PROTOOD_OK ||
            (st = protood_scorer_fit_bank(scorer, bank)) != PROTOOD_OK)
            cli_die_lib(a->bank, st);
        protood_bank_free(bank);
        return scorer;
    }
    cli_matrix train;
    cli_read_features(a->train, &train);
    *dim = train.cols;
    int64_t n_classes = 0;
    int32_t *labels = a->train_labels ? cli_read_labels(a->train_labels, train.rows, &n_classes) : NULL;
    if ((st = protood_scorer_create(&scorer, a->kind, train.cols)) != PROTOOD_OK ||
        (st = protood_scorer_set_param(scorer, PROTOOD_SCORER_NORMALIZE, !a->no_normalize)) != PROTOOD_OK)
        cli_die_lib(a->train, st);
    if (a->kind == PROTOOD_SCORER_KNN && (st = protood_scorer_set_param(scorer, PROTOOD_SCORER_K,
                                                                         (double)(a->k > 0 ? a->k : 50))) != PROTOOD_OK)
        cli_die_lib("--k", st);
    feed f = {train.data, labels, train.cols};
    cli_progress_start("fitting", train.rows);
    st = protood_scorer_fit_stream(scorer, train.rows, STREAM_BATCH, feed_rows, &f,
                                   a->kind == PROTOOD_SCORER_MAHALANOBIS ? n_classes : 0);
    cli_progress_end();
    if (st != PROTOOD_OK)
        cli_die_lib(a->train, st);
    free(labels);
    free(train.data);
    return scorer;
}

/* --scores-out DIR: created if missing; every file is written atomically, and only after all
 * scoring succeeded, so a failed run leaves no partial output. */
static void write_scores(const char *dir, const char *name, int64_t n, const float *scores)
{
    size_t len = strlen(dir) + strlen(name) + 6;
    char *path = malloc(len);
    snprintf(path, len, "%s/%s.npy", dir, name);
    protood_status st = protood_npy_write_f32_vector(path, n, scores);
    if (st != PROTOOD_OK)
        cli_die_lib(path, st);
    free(path);
}

int cli_score(const cli_score_args *args)
{
    cli_score_args a = *args; /* a loaded scorer fills in the method */
    cli_progress_enable(!a.quiet);
    if (a.threads > 0)
        protood_set_threads(a.threads);

    protood_scorer *scorer;
    int64_t dim;
    protood_status st;
    if (a.load_scorer) {
        if ((st = protood_scorer_load(&scorer, a.load_scorer)) != PROTOOD_OK)
            cli_die_lib(a.load_scorer, st);
        int32_t kind, fitted;
        protood_scorer_info(scorer, &kind, &dim, &fitted);
        if (!fitted)
            cli_die(EXIT_DATA, "%s: the scorer was saved before it was fitted", a.load_scorer);
        if (a.kind && a.kind != kind)
            cli_die(EXIT_DATA, "%s: holds a %s scorer, not %s", a.load_scorer, cli_method_name(kind), cli_method_name(a.kind));
        a.kind = kind;
        if (a.k >= 0) {
            if (kind != PROTOOD_SCORER_KNN)
                cli_die(EXIT_USAGE, "score: --k applies to --method knn only");
            if ((st = protood_scorer_set_param(scorer, PROTOOD_SCORER_K, (double)a.k)) != PROTOOD_OK)
                cli_die_lib("--k", st);
        }
    } else {
        scorer = fit_scorer(&a, &dim);
    }

    /* Read and check every input before the long scoring phases. */
    cli_matrix id, ood[CLI_MAX_OOD_SETS];
    cli_read_features(a.id, &id);
    if (id.cols != dim)
        cli_die(EXIT_DATA, "%s: dimension %lld does not match the training features (%lld)", a.id,
                (long long)id.cols, (long long)dim);
    for (int i = 0; i < a.n_ood; i++) {
        cli_read_features(a.ood_files[i], &ood[i]);
        if (ood[i].cols != dim)
            cli_die(EXIT_DATA, "%s: dimension %lld does not match the training features (%lld)", ood[i].path,
                    (long long)ood[i].cols, (long long)dim);
    }

    float *id_scores = score_set(scorer, &id, dim, "scoring id");
    float *ood_scores[CLI_MAX_OOD_SETS];
    cli_metrics metrics[CLI_MAX_OOD_SETS];
    for (int i = 0; i < a.n_ood; i++) {
        char label[64];
        snprintf(label, sizeof label, "scoring %s", a.ood_names[i]);
        ood_scores[i] = score_set(scorer, &ood[i], dim, label);
        cli_evaluate(id.rows, id_scores, ood[i].rows, ood_scores[i], a.fpr, a.ood_names[i], &metrics[i]);
    }

    if (a.scores_out) {
        if (mkdir(a.scores_out, 0777) != 0 && errno != EEXIST)
            cli_die(EXIT_DATA, "%s: cannot create the directory: %s", a.scores_out, strerror(errno));
        write_scores(a.scores_out, "id", id.rows, id_scores);
        for (int i = 0; i < a.n_ood; i++)
            write_scores(a.scores_out, a.ood_names[i], ood[i].rows, ood_scores[i]);
    }
    if (a.save_scorer && (st = protood_scorer_save(scorer, a.save_scorer)) != PROTOOD_OK)
        cli_die_lib(a.save_scorer, st);

    double k = -1;
    if (a.kind == PROTOOD_SCORER_KNN)
        protood_scorer_get_param(scorer, PROTOOD_SCORER_K, &k);
    cli_report(cli_method_name(a.kind), (int64_t)k, a.fpr, a.n_ood, a.ood_names, metrics, a.json);

    for (int i = 0; i < a.n_ood; i++) {
        free(ood[i].data);
        free(ood_scores[i]);
    }
    free(id.data);
    free(id_scores);
    protood_scorer_free(scorer);
    return 0;
}
