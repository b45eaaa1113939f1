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
/* Parse --fpr's value; exits with a usage error on an unknown name. */
int32_t cli_parse_fpr(const char *name);
const char *cli_fpr_name(int32_t convention);

/* The papers' table (percent) or one JSON object (fractions). `k` < 0 prints as null. */
void cli_report(const char *method, int64_t k, int32_t convention, int n_sets, const char *const *names,
                const cli_metrics *m, int json);

/* Subcommands. argv[0] is the subcommand name. */
int cli_score(int argc, char **argv);
int cli_metrics_cmd(int argc, char **argv);
int cli_inspect(int argc, char **argv);
void cli_help(const char *topic);

#endif
