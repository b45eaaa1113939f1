/* The protood command-line tool: shared declarations of its parts. */
#ifndef PROTOOD_CLI_H
#define PROTOOD_CLI_H

#include <protood/protood.h>
#include <stdint.h>

/* Exit codes: usage errors are 2 (like getopt tools), data and I/O errors 1. */
#define EXIT_DATA  1
#define EXIT_USAGE 2

/* Print "protood: <message>" on stderr and exit with `code`. */
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 2, 3)))
#endif
void cli_die(int code, const char *fmt, ...);

/* Exit with the library's last error, prefixed by `what` (usually a file name). */
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void cli_die_lib(const char *what, protood_status st);

/* A feature matrix read from a .npy file (float32/64/16, converted to float32). */
typedef struct cli_matrix {
    const char *path;
    int64_t rows, cols;
    float *data;
} cli_matrix;

void cli_read_features(const char *path, cli_matrix *m);
/* Labels (int32/int64) for `n` rows; *n_classes = max label + 1. */
int32_t *cli_read_labels(const char *path, int64_t n, int64_t *n_classes);
/* A 1-D (or n x 1) score file. */
float *cli_read_scores(const char *path, int64_t *n);

/* Progress bar on stderr: drawn only when stderr is a terminal, --quiet is off, and the phase has
 * run for more than a second. */
void cli_progress_enable(int enabled);
void cli_progress_start(const char *label, int64_t total);
void cli_progress_update(int64_t done);
void cli_progress_end(void);

/* Metrics of one OOD set against the in-distribution scores. */
typedef struct cli_metrics {
    double fpr95, auroc, aupr_in, aupr_out;
} cli_metrics;

void cli_evaluate(int64_t n_in, const float *s_in, int64_t n_out, const float *s_out, int32_t convention,
                  const char *ood_name, cli_metrics *out);
const char *cli_fpr_name(int32_t convention);
const char *cli_method_name(int32_t kind);

/* The papers' table (percent) or one JSON object (fractions). `k` < 0 prints as null. */
void cli_report(const char *method, int64_t k, int32_t convention, int n_sets, const char *const *names,
                const cli_metrics *m, int json);

/* ---- The command line (args.c) ----------------------------------------------------------- */

#define CLI_MAX_OOD_SETS 64

typedef enum cli_command {
    CLI_USAGE,     /* no command: the overview on stderr, exit status 2 */
    CLI_VERSION,
    CLI_HELP,
    CLI_SCORE,
    CLI_METRICS,
    CLI_INSPECT,
} cli_command;

typedef struct cli_score_args {
    int32_t kind;             /* PROTOOD_SCORER_*; 0: not given */
    const char *train, *train_labels, *bank, *id;
    const char *ood_names[CLI_MAX_OOD_SETS], *ood_files[CLI_MAX_OOD_SETS];
    int n_ood;
    int64_t k;                /* -1: not given */
    int no_normalize, json, quiet;
    int32_t fpr;
    const char *scores_out, *save_scorer, *load_scorer;
    int32_t threads;          /* 0: not given */
} cli_score_args;

typedef struct cli_metrics_args {
    const char *id, *ood;
    int32_t fpr;
    int json;
} cli_metrics_args;

typedef struct cli_args {
    cli_command command;
    const char *help_topic;   /* CLI_HELP: a known command name, or NULL for the overview */
    const char *inspect_path; /* CLI_INSPECT */
    cli_score_args score;     /* CLI_SCORE */
    cli_metrics_args metrics; /* CLI_METRICS */
    char *error;              /* set when parsing failed: the message after "protood: " */
} cli_args;

/* Parse the whole command line (argv[0] is the program) into *a: 0 on success, otherwise the
 * exit status (EXIT_USAGE) with a->error set. Prints nothing, exits never, touches no file; the
 * strings in *a point into argv except ood_names and error, which cli_args_free releases (call
 * it in every case). */
int cli_parse_args(int argc, char **argv, cli_args *a);
void cli_args_free(cli_args *a);

/* The commands, on parsed arguments. */
int cli_score(const cli_score_args *args);
int cli_metrics_cmd(const cli_metrics_args *args);
int cli_inspect(const char *path);
void cli_help(const char *topic);

#endif
