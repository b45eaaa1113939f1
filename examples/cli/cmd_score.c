/* protood score: fit (or load) a scorer on training features, score the in-distribution test set
 * and every OOD set, and report FPR95 / AUROC / AUPR. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define MAX_OOD_SETS 64
#define STREAM_BATCH 4096   /* rows per callback: the granularity of the progress bar */

static const struct {
    const char *name;
    int32_t kind;
} methods[] = {
    {"knn", PROTOOD_SCORER_KNN},
    {"maha", PROTOOD_SCORER_MAHALANOBIS},
    {"ssd", PROTOOD_SCORER_SSD},
    {"proto", PROTOOD_SCORER_PROTOTYPE},
};

static const char *method_name(int32_t kind)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].kind == kind)
            return methods[i].name;
    return "?";
}

typedef struct score_args {
    int32_t kind;             /* 0: not given */
    const char *train, *train_labels, *bank, *id;
    const char *ood_names[MAX_OOD_SETS], *ood_files[MAX_OOD_SETS];
    int n_ood;
    int64_t k;                /* -1: not given */
    int no_normalize, json, quiet;
    int32_t fpr;
    const char *scores_out, *save_scorer, *load_scorer;
    int threads;
} score_args;

/* Value of an option given as "--name value" or "--name=value". */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t len = strlen(name);
    if (argv[*i][len] == '=')
        return argv[*i] + len + 1;
    if (*i + 1 >= argc)
        cli_die(EXIT_USAGE, "%s needs a value (see 'protood help score')", name);
    return argv[++*i];
}

static int64_t parse_positive(const char *option, const char *text)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text || v < 1)
        cli_die(EXIT_USAGE, "%s: '%s' is not a positive integer", option, text);
    return v;
}

static int is_option(const char *arg, const char *name)
{
    size_t len = strlen(name);
    return strncmp(arg, name, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

static void parse_args(int argc, char **argv, score_args *a)
{
    memset(a, 0, sizeof *a);
    a->k = -1;
    a->fpr = PROTOOD_FPR_ROC;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (is_option(arg, "--method")) {
            const char *v = option_value(argc, argv, &i, "--method");
            for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++)
                if (strcmp(v, methods[m].name) == 0)
                    a->kind = methods[m].kind;
            if (!a->kind)
                cli_die(EXIT_USAGE, "--method: unknown method '%s' (knn, maha, ssd or proto)", v);
        } else if (is_option(arg, "--train")) {
            a->train = option_value(argc, argv, &i, "--train");
        } else if (is_option(arg, "--train-labels")) {
            a->train_labels = option_value(argc, argv, &i, "--train-labels");
        } else if (is_option(arg, "--bank")) {
            a->bank = option_value(argc, argv, &i, "--bank");
        } else if (is_option(arg, "--id")) {
            a->id = option_value(argc, argv, &i, "--id");
        } else if (is_option(arg, "--ood")) {
            const char *v = option_value(argc, argv, &i, "--ood");
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1])
                cli_die(EXIT_USAGE, "--ood: expected NAME=FILE.npy, got '%s'", v);
            if (a->n_ood == MAX_OOD_SETS)
                cli_die(EXIT_USAGE, "--ood: at most %d sets", MAX_OOD_SETS);
            char *name = strndup(v, (size_t)(eq - v));
            if (strchr(name, '/') || strcmp(name, "id") == 0 || strcmp(name, "Average") == 0)
                cli_die(EXIT_USAGE, "--ood: '%s' cannot name a set (no '/', not 'id' or 'Average')", name);
            for (int j = 0; j < a->n_ood; j++)
                if (strcmp(a->ood_names[j], name) == 0)
                    cli_die(EXIT_USAGE, "--ood: the name '%s' is given twice", name);
            a->ood_names[a->n_ood] = name;
            a->ood_files[a->n_ood++] = eq + 1;
        } else if (is_option(arg, "--k")) {
            a->k = parse_positive("--k", option_value(argc, argv, &i, "--k"));
        } else if (strcmp(arg, "--no-normalize") == 0) {
            a->no_normalize = 1;
        } else if (is_option(arg, "--fpr")) {
            a->fpr = cli_parse_fpr(option_value(argc, argv, &i, "--fpr"));
        } else if (strcmp(arg, "--json") == 0) {
            a->json = 1;
        } else if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0) {
            a->quiet = 1;
        } else if (is_option(arg, "--scores-out")) {
            a->scores_out = option_value(argc, argv, &i, "--scores-out");
        } else if (is_option(arg, "--save-scorer")) {
            a->save_scorer = option_value(argc, argv, &i, "--save-scorer");
        } else if (is_option(arg, "--load-scorer")) {
            a->load_scorer = option_value(argc, argv, &i, "--load-scorer");
        } else if (is_option(arg, "--threads")) {
            a->threads = (int)parse_positive("--threads", option_value(argc, argv, &i, "--threads"));
        } else {
            cli_die(EXIT_USAGE, "score: unknown argument '%s' (see 'protood help score')", arg);
        }
    }
    if (!a->id)
        cli_die(EXIT_USAGE, "score: --id ID_TEST.npy is required");
    if (a->n_ood == 0)
        cli_die(EXIT_USAGE, "score: at least one --ood NAME=FILE.npy is required");
    if (a->save_scorer && a->load_scorer)
        cli_die(EXIT_USAGE, "score: --save-scorer and --load-scorer exclude each other");
    if (a->load_scorer) {
        if (a->train || a->train_labels || a->bank)
            cli_die(EXIT_USAGE, "score: --load-scorer replaces --train, --train-labels and --bank");
        if (a->no_normalize)
            cli_die(EXIT_USAGE, "score: --no-normalize is fixed when the scorer is fitted, not with --load-scorer");
        return;
    }
    if (!a->kind)
        cli_die(EXIT_USAGE, "score: --method knn|maha|ssd|proto is required");
    if (a->kind == PROTOOD_SCORER_PROTOTYPE) {
        if (!a->bank)
            cli_die(EXIT_USAGE, "score: --method proto needs --bank BANK");
        if (a->train || a->train_labels)
            cli_die(EXIT_USAGE, "score: --method proto takes its prototypes from --bank, not --train");
    } else {
        if (!a->train)
            cli_die(EXIT_USAGE, "score: --train TRAIN.npy is required");
        if (a->bank)
            cli_die(EXIT_USAGE, "score: --bank is for --method proto only");
    }
    if (a->kind == PROTOOD_SCORER_MAHALANOBIS && !a->train_labels)
        cli_die(EXIT_USAGE, "score: --method maha needs --train-labels LABELS.npy");
    if (a->k >= 0 && a->kind != PROTOOD_SCORER_KNN)
        cli_die(EXIT_USAGE, "score: --k applies to --method knn only");
}

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

static protood_scorer *fit_scorer(const score_args *a, int64_t *dim)
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

int cli_score(int argc, char **argv)
{
    score_args a;
    parse_args(argc, argv, &a);
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
            cli_die(EXIT_DATA, "%s: holds a %s scorer, not %s", a.load_scorer, method_name(kind), method_name(a.kind));
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
    cli_matrix id, ood[MAX_OOD_SETS];
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
    float *ood_scores[MAX_OOD_SETS];
    cli_metrics metrics[MAX_OOD_SETS];
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
    cli_report(method_name(a.kind), (int64_t)k, a.fpr, a.n_ood, a.ood_names, metrics, a.json);

    for (int i = 0; i < a.n_ood; i++) {
        free(ood[i].data);
        free(ood_scores[i]);
        free((char *)a.ood_names[i]);
    }
    free(id.data);
    free(id_scores);
    protood_scorer_free(scorer);
    return 0;
}
