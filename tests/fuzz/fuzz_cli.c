/* Fuzz target: the protood tool's command line (examples/cli/args.c, cli_parse_args).
 *
 * Input encoding: the arguments after the program name, separated by NUL bytes ("" is no
 * argument at all; "a\0" is "a" and ""). Invariants: the parser leaves argv as it was; it fails
 * only with the usage status and a message; what it accepts satisfies every rule of 'protood help
 * score' (one --id, at least one uniquely named --ood, the method's inputs and no others, ...);
 * and it is a function of meaning: the accepted arguments, written back in one canonical form,
 * parse to the same result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz_common.h"

#define MAX_ARGS 300 /* enough to pass the limit of 64 --ood sets */

typedef struct argv_buf {
    int argc;
    char *argv[MAX_ARGS + 2];
} argv_buf;

/* Append the argument w + x + y + z. */
static void add(argv_buf *b, const char *w, const char *x, const char *y, const char *z)
{
    FUZZ_CHECK(b->argc <= MAX_ARGS, "too many arguments");
    size_t n = strlen(w) + strlen(x) + strlen(y) + strlen(z);
    char *arg = malloc(n + 1);
    FUZZ_CHECK(arg != NULL, "no memory");
    snprintf(arg, n + 1, "%s%s%s%s", w, x, y, z);
    b->argv[b->argc++] = arg;
    b->argv[b->argc] = NULL;
}

static void add_opt(argv_buf *b, const char *option, const char *value)
{
    if (value)
        add(b, option, "=", value, "");
}

static void free_argv(argv_buf *b)
{
    for (int i = 0; i < b->argc; i++)
        free(b->argv[i]);
}

static int same(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void check_score(const cli_score_args *s)
{
    FUZZ_CHECK(s->id != NULL, "accepted without --id");
    FUZZ_CHECK(s->n_ood >= 1 && s->n_ood <= CLI_MAX_OOD_SETS, "%d OOD sets", s->n_ood);
    for (int i = 0; i < s->n_ood; i++) {
        const char *name = s->ood_names[i];
        FUZZ_CHECK(*name && !strchr(name, '/') && strcmp(name, "id") != 0 && strcmp(name, "Average") != 0,
                   "OOD set name '%s'", name);
        FUZZ_CHECK(*s->ood_files[i], "OOD set '%s' without a file", name);
        for (int j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(s->ood_names[j], name) != 0, "OOD set name '%s' twice", name);
    }
    FUZZ_CHECK(s->k == -1 || s->k >= 1, "k = %lld", (long long)s->k);
    FUZZ_CHECK(s->threads >= 0, "threads = %d", (int)s->threads);
    FUZZ_CHECK(s->fpr >= PROTOOD_FPR_ROC && s->fpr <= PROTOOD_FPR_OOD_POSITIVE, "fpr = %d", (int)s->fpr);
    FUZZ_CHECK(!(s->save_scorer && s->load_scorer), "--save-scorer with --load-scorer");
    if (s->load_scorer) {
        FUZZ_CHECK(!s->train && !s->train_labels && !s->bank && !s->no_normalize, "--load-scorer with fit inputs");
        return;
    }
    FUZZ_CHECK(s->kind >= PROTOOD_SCORER_KNN && s->kind <= PROTOOD_SCORER_PROTOTYPE, "method %d", (int)s->kind);
    if (s->kind == PROTOOD_SCORER_PROTOTYPE)
        FUZZ_CHECK(s->bank && !s->train && !s->train_labels, "proto without --bank or with --train");
    else
        FUZZ_CHECK(s->train && !s->bank, "method %d without --train or with --bank", (int)s->kind);
    if (s->kind == PROTOOD_SCORER_MAHALANOBIS)
        FUZZ_CHECK(s->train_labels != NULL, "maha without labels");
    if (s->k >= 0)
        FUZZ_CHECK(s->kind == PROTOOD_SCORER_KNN, "--k with method %d", (int)s->kind);
}

/* The accepted command line in one form: every value as --option=value, in a fixed order. */
static void canonical(const cli_args *a, argv_buf *b)
{
    b->argc = 0;
    add(b, "protood", "", "", "");
    char num[32];
    switch (a->command) {
    case CLI_USAGE:
        break;
    case CLI_VERSION:
        add(b, "--version", "", "", "");
        break;
    case CLI_HELP:
        add(b, "help", "", "", "");
        if (a->help_topic)
            add(b, a->help_topic, "", "", "");
        break;
    case CLI_INSPECT:
        add(b, "inspect", "", "", "");
        add(b, a->inspect_path, "", "", "");
        break;
    case CLI_METRICS:
        add(b, "metrics", "", "", "");
        add_opt(b, "--id", a->metrics.id);
        add_opt(b, "--ood", a->metrics.ood);
        add_opt(b, "--fpr", cli_fpr_name(a->metrics.fpr));
        if (a->metrics.json)
            add(b, "--json", "", "", "");
        break;
    case CLI_SCORE: {
        const cli_score_args *s = &a->score;
        add(b, "score", "", "", "");
        add_opt(b, "--method", s->kind ? cli_method_name(s->kind) : NULL);
        add_opt(b, "--train", s->train);
        add_opt(b, "--train-labels", s->train_labels);
        add_opt(b, "--bank", s->bank);
        add_opt(b, "--id", s->id);
        for (int i = 0; i < s->n_ood; i++)
            add(b, "--ood=", s->ood_names[i], "=", s->ood_files[i]);
        snprintf(num, sizeof num, "%lld", (long long)s->k);
        add_opt(b, "--k", s->k >= 0 ? num : NULL);
        if (s->no_normalize)
            add(b, "--no-normalize", "", "", "");
        add_opt(b, "--fpr", cli_fpr_name(s->fpr));
        if (s->json)
            add(b, "--json", "", "", "");
        if (s->quiet)
            add(b, "--quiet", "", "", "");
        add_opt(b, "--scores-out", s->scores_out);
        add_opt(b, "--save-scorer", s->save_scorer);
        add_opt(b, "--load-scorer", s->load_scorer);
        snprintf(num, sizeof num, "%d", (int)s->threads);
        add_opt(b, "--threads", s->threads > 0 ? num : NULL);
        break;
    }
    }
}

static void check_equal(const cli_args *x, const cli_args *y)
{
    FUZZ_CHECK(x->command == y->command, "command %d, canonical form gives %d", (int)x->command, (int)y->command);
    FUZZ_CHECK(same(x->help_topic, y->help_topic) && same(x->inspect_path, y->inspect_path), "help/inspect differ");
    const cli_metrics_args *m = &x->metrics, *n = &y->metrics;
    FUZZ_CHECK(same(m->id, n->id) && same(m->ood, n->ood) && m->fpr == n->fpr && m->json == n->json,
               "metrics arguments differ");
    const cli_score_args *s = &x->score, *t = &y->score;
    FUZZ_CHECK(s->kind == t->kind && same(s->train, t->train) && same(s->train_labels, t->train_labels) &&
                   same(s->bank, t->bank) && same(s->id, t->id) && s->n_ood == t->n_ood && s->k == t->k &&
                   s->no_normalize == t->no_normalize && s->json == t->json && s->quiet == t->quiet &&
                   s->fpr == t->fpr && same(s->scores_out, t->scores_out) && same(s->save_scorer, t->save_scorer) &&
                   same(s->load_scorer, t->load_scorer) && s->threads == t->threads,
               "score arguments differ from their canonical form's");
    for (int i = 0; i < s->n_ood; i++)
        FUZZ_CHECK(same(s->ood_names[i], t->ood_names[i]) && same(s->ood_files[i], t->ood_files[i]),
                   "OOD set %d differs", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Each argument in its own allocation, so that reading past one is caught. */
    argv_buf in = {0, {NULL}};
    add(&in, "protood", "", "", "");
    for (size_t start = 0; size > 0 && start <= size && in.argc <= MAX_ARGS;) {
        const uint8_t *nul = memchr(data + start, 0, size - start);
        size_t len = nul ? (size_t)(nul - data) - start : size - start;
        char *arg = malloc(len + 1);
        FUZZ_CHECK(arg != NULL, "no memory");
        memcpy(arg, data + start, len);
        arg[len] = '\0';
        in.argv[in.argc++] = arg;
        start += len + 1;
    }
    in.argv[in.argc] = NULL;
    char *pointers[MAX_ARGS + 2];
    memcpy(pointers, in.argv, sizeof pointers);
    argv_buf copy = {0, {NULL}};
    for (int i = 0; i < in.argc; i++)
        add(&copy, in.argv[i], "", "", "");

    cli_args a;
    int code = cli_parse_args(in.argc, in.argv, &a);
    for (int i = 0; i < in.argc; i++)
        FUZZ_CHECK(in.argv[i] == pointers[i] && strcmp(in.argv[i], copy.argv[i]) == 0, "argv[%d] changed", i);
    if (code != 0) {
        FUZZ_CHECK(code == EXIT_USAGE, "parse failed with exit status %d", code);
        FUZZ_CHECK(a.error && *a.error, "usage error without a message");
    } else {
        FUZZ_CHECK(a.error == NULL, "success with a message '%s'", a.error);
        if (a.command == CLI_SCORE)
            check_score(&a.score);
        if (a.command == CLI_METRICS)
            FUZZ_CHECK(a.metrics.id && a.metrics.ood, "metrics without --id or --ood");
        if (a.command == CLI_USAGE)
            FUZZ_CHECK(in.argc == 1, "usage with %d arguments", in.argc - 1);
        argv_buf canon;
        canonical(&a, &canon);
        cli_args again;
        int code2 = cli_parse_args(canon.argc, canon.argv, &again);
        FUZZ_CHECK(code2 == 0, "canonical form rejected: %s", again.error);
        check_equal(&a, &again);
        cli_args_free(&again);
        free_argv(&canon);
    }
    cli_args_free(&a);
    free_argv(&copy);
    free_argv(&in);
    return 0;
}
