/* The protood tool's command line, parsed without side effects: no output, no exit, nothing
 * read. main.c acts on the result; tests/fuzz/fuzz_cli.c calls the parser directly. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int32_t kind;
} methods[] = {
    {"knn", PROTOOD_SCORER_KNN},
    {"maha", PROTOOD_SCORER_MAHALANOBIS},
    {"ssd", PROTOOD_SCORER_SSD},
    {"proto", PROTOOD_SCORER_PROTOTYPE},
};

static const struct {
    const char *name;
    int32_t convention;
} fpr_names[] = {
    {"roc", PROTOOD_FPR_ROC},
    {"knn", PROTOOD_FPR_KNN},
    {"percentile", PROTOOD_FPR_PERCENTILE},
    {"ood_positive", PROTOOD_FPR_OOD_POSITIVE},
};

const char *cli_method_name(int32_t kind)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].kind == kind)
            return methods[i].name;
    return "?";
}

const char *cli_fpr_name(int32_t convention)
{
    for (size_t i = 0; i < sizeof fpr_names / sizeof fpr_names[0]; i++)
        if (fpr_names[i].convention == convention)
            return fpr_names[i].name;
    return "?";
}

/* Record the message (the text after "protood: ") and return the exit code. The message is
 * allocated because it quotes arguments of any length. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(cli_args *a, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    free(a->error);
    a->error = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!a->error) {
        a->error = strdup("out of memory");
        return EXIT_DATA;
    }
    va_start(ap, fmt);
    vsnprintf(a->error, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return code;
}

static int parse_fpr(cli_args *a, const char *name, int32_t *out)
{
    for (size_t i = 0; i < sizeof fpr_names / sizeof fpr_names[0]; i++)
        if (strcmp(name, fpr_names[i].name) == 0) {
            *out = fpr_names[i].convention;
            return 0;
        }
    return fail(a, EXIT_USAGE, "--fpr: unknown convention '%s' (roc, knn, percentile or ood_positive)", name);
}

/* "--name" or "--name=value" */
static int is_option(const char *arg, const char *name)
{
    size_t len = strlen(name);
    return strncmp(arg, name, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

/* Value of an option given as "--name value" or "--name=value"; NULL when it is missing. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t len = strlen(name);
    if (argv[*i][len] == '=')
        return argv[*i] + len + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

/* A positive integer no larger than `max`, into *out. */
static int parse_positive(cli_args *a, const char *option, const char *text, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text || v < 1 || v > max)
        return fail(a, EXIT_USAGE, "%s: '%s' is not a positive integer", option, text);
    *out = v;
    return 0;
}

static int parse_score(int argc, char **argv, cli_args *args)
{
    cli_score_args *a = &args->score;
    a->k = -1;
    a->fpr = PROTOOD_FPR_ROC;
    int code;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        /* The option that takes a value, if arg is one; its value is read below. */
        static const char *const valued[] = {"--method", "--train", "--train-labels", "--bank", "--id",
                                             "--ood", "--k", "--fpr", "--scores-out", "--save-scorer",
                                             "--load-scorer", "--threads"};
        const char *option = NULL, *v = NULL;
        for (size_t o = 0; o < sizeof valued / sizeof valued[0] && !option; o++)
            if (is_option(arg, valued[o]))
                option = valued[o];
        if (option && !(v = option_value(argc, argv, &i, option)))
            return fail(args, EXIT_USAGE, "%s needs a value (see 'protood help score')", option);
        if (!option) {
            if (strcmp(arg, "--no-normalize") == 0)
                a->no_normalize = 1;
            else if (strcmp(arg, "--json") == 0)
                a->json = 1;
            else if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0)
                a->quiet = 1;
            else
                return fail(args, EXIT_USAGE, "score: unknown argument '%s' (see 'protood help score')", arg);
        } else if (strcmp(option, "--method") == 0) {
            for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++)
                if (strcmp(v, methods[m].name) == 0)
                    a->kind = methods[m].kind;
            if (!a->kind)
                return fail(args, EXIT_USAGE, "--method: unknown method '%s' (knn, maha, ssd or proto)", v);
        } else if (strcmp(option, "--train") == 0) {
            a->train = v;
        } else if (strcmp(option, "--train-labels") == 0) {
            a->train_labels = v;
        } else if (strcmp(option, "--bank") == 0) {
            a->bank = v;
        } else if (strcmp(option, "--id") == 0) {
            a->id = v;
        } else if (strcmp(option, "--ood") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1])
                return fail(args, EXIT_USAGE, "--ood: expected NAME=FILE.npy, got '%s'", v);
            if (a->n_ood == CLI_MAX_OOD_SETS)
                return fail(args, EXIT_USAGE, "--ood: at most %d sets", CLI_MAX_OOD_SETS);
            char *name = strndup(v, (size_t)(eq - v));
            if (!name)
                return fail(args, EXIT_DATA, "out of memory");
            if (strchr(name, '/') || strcmp(name, "id") == 0 || strcmp(name, "Average") == 0) {
                code = fail(args, EXIT_USAGE, "--ood: '%s' cannot name a set (no '/', not 'id' or 'Average')", name);
                free(name);
                return code;
            }
            for (int j = 0; j < a->n_ood; j++)
                if (strcmp(a->ood_names[j], name) == 0) {
                    code = fail(args, EXIT_USAGE, "--ood: the name '%s' is given twice", name);
                    free(name);
                    return code;
                }
            a->ood_names[a->n_ood] = name;
            a->ood_files[a->n_ood++] = eq + 1;
        } else if (strcmp(option, "--k") == 0) {
            long long k;
            if ((code = parse_positive(args, "--k", v, INT64_MAX, &k)) != 0)
                return code;
            a->k = k;
        } else if (strcmp(option, "--fpr") == 0) {
            if ((code = parse_fpr(args, v, &a->fpr)) != 0)
                return code;
        } else if (strcmp(option, "--scores-out") == 0) {
            a->scores_out = v;
        } else if (strcmp(option, "--save-scorer") == 0) {
            a->save_scorer = v;
        } else if (strcmp(option, "--load-scorer") == 0) {
            a->load_scorer = v;
        } else { /* --threads: protood_set_threads takes an int32_t */
            long long n;
            if ((code = parse_positive(args, "--threads", v, INT32_MAX, &n)) != 0)
                return code;
            a->threads = (int32_t)n;
        }
    }
    if (!a->id)
        return fail(args, EXIT_USAGE, "score: --id ID_TEST.npy is required");
    if (a->n_ood == 0)
        return fail(args, EXIT_USAGE, "score: at least one --ood NAME=FILE.npy is required");
    if (a->save_scorer && a->load_scorer)
        return fail(args, EXIT_USAGE, "score: --save-scorer and --load-scorer exclude each other");
    if (a->load_scorer) {
        if (a->train || a->train_labels || a->bank)
            return fail(args, EXIT_USAGE, "score: --load-scorer replaces --train, --train-labels and --bank");
        if (a->no_normalize)
            return fail(args, EXIT_USAGE,
                        "score: --no-normalize is fixed when the scorer is fitted, not with --load-scorer");
        return 0;
    }
    if (!a->kind)
        return fail(args, EXIT_USAGE, "score: --method knn|maha|ssd|proto is required");
    if (a->kind == PROTOOD_SCORER_PROTOTYPE) {
        if (!a->bank)
            return fail(args, EXIT_USAGE, "score: --method proto needs --bank BANK");
        if (a->train || a->train_labels)
            return fail(args, EXIT_USAGE, "score: --method proto takes its prototypes from --bank, not --train");
    } else {
        if (!a->train)
            return fail(args, EXIT_USAGE, "score: --train TRAIN.npy is required");
        if (a->bank)
            return fail(args, EXIT_USAGE, "score: --bank is for --method proto only");
    }
    if (a->kind == PROTOOD_SCORER_MAHALANOBIS && !a->train_labels)
        return fail(args, EXIT_USAGE, "score: --method maha needs --train-labels LABELS.npy");
    if (a->k >= 0 && a->kind != PROTOOD_SCORER_KNN)
        return fail(args, EXIT_USAGE, "score: --k applies to --method knn only");
    return 0;
}

static int parse_metrics(int argc, char **argv, cli_args *args)
{
    cli_metrics_args *a = &args->metrics;
    a->fpr = PROTOOD_FPR_ROC;
    int code;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        const char *names[] = {"--id", "--ood", "--fpr"};
        for (int n = 0; n < 3; n++) {
            if (!is_option(arg, names[n]))
                continue;
            if (!(value = option_value(argc, argv, &i, names[n])))
                return fail(args, EXIT_USAGE, "%s needs a value (see 'protood help metrics')", names[n]);
            if (n == 0)
                a->id = value;
            else if (n == 1)
                a->ood = value;
            else if ((code = parse_fpr(args, value, &a->fpr)) != 0)
                return code;
        }
        if (value)
            continue;
        if (strcmp(arg, "--json") == 0)
            a->json = 1;
        else
            return fail(args, EXIT_USAGE, "metrics: unknown argument '%s' (see 'protood help metrics')", arg);
    }
    if (!a->id || !a->ood)
        return fail(args, EXIT_USAGE, "metrics: --id ID_SCORES.npy and --ood OOD_SCORES.npy are required");
    return 0;
}

static int help(cli_args *a, const char *topic)
{
    static const char *const topics[] = {"score", "metrics", "inspect", "help"};
    int known = topic == NULL;
    for (size_t i = 0; i < sizeof topics / sizeof topics[0] && !known; i++)
        known = strcmp(topic, topics[i]) == 0;
    if (!known)
        return fail(a, EXIT_USAGE, "help: no command '%s' (score, metrics, inspect)", topic);
    a->command = CLI_HELP;
    a->help_topic = topic;
    return 0;
}

int cli_parse_args(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    if (argc < 2) {
        a->command = CLI_USAGE;
        return 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        a->command = CLI_VERSION;
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 3)
            return fail(a, EXIT_USAGE, "help takes at most one command name");
        return help(a, argc == 3 ? argv[2] : NULL);
    }
    /* --help anywhere after a command asks for that command's help, whatever else is there. */
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return help(a, cmd);
    if (strcmp(cmd, "score") == 0) {
        a->command = CLI_SCORE;
        return parse_score(argc - 1, argv + 1, a);
    }
    if (strcmp(cmd, "metrics") == 0) {
        a->command = CLI_METRICS;
        return parse_metrics(argc - 1, argv + 1, a);
    }
    if (strcmp(cmd, "inspect") == 0) {
        if (argc != 3)
            return fail(a, EXIT_USAGE, "inspect takes one FILE (see 'protood help inspect')");
        a->command = CLI_INSPECT;
        a->inspect_path = argv[2];
        return 0;
    }
    return fail(a, EXIT_USAGE, "'%s' is not a command; see 'protood help'", cmd);
}

void cli_args_free(cli_args *a)
{
    for (int i = 0; i < a->score.n_ood; i++)
        free((char *)a->score.ood_names[i]);
    free(a->error);
    memset(a, 0, sizeof *a);
}
