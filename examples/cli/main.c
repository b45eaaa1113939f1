/* protood: OOD evaluation of precomputed feature files from the command line. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *usage_main =
    "usage: protood <command> [options]\n"
    "\n"
    "Out-of-distribution evaluation of precomputed features (NumPy .npy files) with libprotood.\n"
    "\n"
    "commands:\n"
    "   score     fit a scorer on training features and report FPR95 / AUROC / AUPR per OOD set\n"
    "   metrics   the same metrics for scores computed elsewhere\n"
    "   inspect   what a .npy, bank or scorer file holds\n"
    "   help      this text, or 'protood help <command>' for one command\n"
    "\n"
    "options:\n"
    "   --version   print the versions of the tool and the library\n"
    "\n"
    "Higher scores mean more in-distribution; in-distribution is the positive class.\n";

static const char *usage_score =
    "usage: protood score --method knn|maha|ssd|proto --id ID_TEST.npy --ood NAME=FILE.npy [...]\n"
    "                     (--train TRAIN.npy [--train-labels Y.npy] | --bank BANK | --load-scorer FILE)\n"
    "                     [--k 50] [--no-normalize] [--fpr roc|knn|percentile|ood_positive] [--json]\n"
    "                     [--scores-out DIR] [--save-scorer FILE] [--threads N] [--quiet]\n"
    "\n"
    "Fits a scorer on the training features, scores the in-distribution test set and each OOD set,\n"
    "and prints one row per OOD set with FPR at 95% TPR, AUROC, AUPR-In and AUPR-Out (in %), and\n"
    "their average.\n"
    "\n"
    "methods:\n"
    "   knn     -(squared distance) to the k-th nearest normalised training row (Sun et al. 2022)\n"
    "   maha    class-conditional Mahalanobis with tied covariance; needs --train-labels\n"
    "   ssd     single Gaussian on standardised features (PALM's table)\n"
    "   proto   maximum cosine to the prototypes of a bank saved by protood_bank_save; needs --bank\n"
    "\n"
    "options:\n"
    "   --train FILE          training features, n x d, float32/float64/float16\n"
    "   --train-labels FILE   int32/int64 class labels of the training rows (maha)\n"
    "   --bank FILE           prototype bank (proto)\n"
    "   --id FILE             in-distribution test features\n"
    "   --ood NAME=FILE       an OOD set; repeat for several\n"
    "   --k N                 neighbour rank for knn (default 50)\n"
    "   --no-normalize        do not L2-normalise the features first\n"
    "   --fpr NAME            FPR95 convention: roc (default), knn, percentile (PALM's), ood_positive (OpenOOD's)\n"
    "   --json                one JSON object instead of the table (fractions, not percent)\n"
    "   --scores-out DIR      also write id.npy and NAME.npy with the scores (created if missing)\n"
    "   --save-scorer FILE    save the fitted scorer; --load-scorer FILE reuses it (no --train)\n"
    "   --threads N           threads for BLAS and OpenMP\n"
    "   --quiet               no progress bar (it is shown only on a terminal anyway)\n"
    "\n"
    "examples:\n"
    "   protood score --method knn --k 50 --train train.npy --id test.npy \\\n"
    "                 --ood svhn=svhn.npy --ood places=places.npy\n"
    "   protood score --method maha --train train.npy --train-labels y.npy --id test.npy \\\n"
    "                 --ood far=far.npy --json --scores-out scores/\n"
    "   protood score --method knn --train train.npy --id t.npy --ood x=x.npy --save-scorer knn.scorer\n"
    "   protood score --load-scorer knn.scorer --id t.npy --ood y=y.npy\n"
    "\n"
    "exit status: 0 on success, 2 for usage errors, 1 for data or file errors.\n";

static const char *usage_metrics =
    "usage: protood metrics --id ID_SCORES.npy --ood OOD_SCORES.npy [--fpr CONVENTION] [--json]\n"
    "\n"
    "FPR95, AUROC, AUPR-In and AUPR-Out of scores computed elsewhere (1-D .npy files; higher = more\n"
    "in-distribution).\n"
    "\n"
    "example:\n"
    "   protood metrics --id scores/id.npy --ood scores/svhn.npy --fpr percentile\n";

static const char *usage_inspect =
    "usage: protood inspect FILE\n"
    "\n"
    "Shows what a .npy file (shape, dtype), a prototype bank or a scorer file (shape, parameters,\n"
    "checksum status) holds. Exits 1 if the file is unreadable or corrupt.\n"
    "\n"
    "example:\n"
    "   protood inspect train.npy\n";

/* The topic was checked by the parser: NULL and "help" give the overview. */
void cli_help(const char *topic)
{
    if (topic && strcmp(topic, "score") == 0)
        fputs(usage_score, stdout);
    else if (topic && strcmp(topic, "metrics") == 0)
        fputs(usage_metrics, stdout);
    else if (topic && strcmp(topic, "inspect") == 0)
        fputs(usage_inspect, stdout);
    else
        fputs(usage_main, stdout);
}

int main(int argc, char **argv)
{
    cli_args a;
    int code = cli_parse_args(argc, argv, &a);
    if (code != 0)
        cli_die(code, "%s", a.error);
    switch (a.command) {
    case CLI_USAGE:
        fputs(usage_main, stderr);
        code = EXIT_USAGE;
        break;
    case CLI_VERSION:
        printf("protood %s (libprotood %s, ABI %u; %s)\n", PROTOOD_VERSION_STRING, protood_version_string(),
               protood_abi_version(), protood_build_info());
        break;
    case CLI_HELP:
        cli_help(a.help_topic);
        break;
    case CLI_SCORE:
        code = cli_score(&a.score);
        break;
    case CLI_METRICS:
        code = cli_metrics_cmd(&a.metrics);
        break;
    case CLI_INSPECT:
        code = cli_inspect(a.inspect_path);
        break;
    }
    cli_args_free(&a);
    return code;
}
