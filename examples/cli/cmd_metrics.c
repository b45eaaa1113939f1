/* protood metrics: FPR95 / AUROC / AUPR of scores computed elsewhere. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_metrics_cmd(int argc, char **argv)
{
    const char *id = NULL, *ood = NULL;
    int32_t fpr = PROTOOD_FPR_ROC;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        const char *names[] = {"--id", "--ood", "--fpr"};
        for (int n = 0; n < 3; n++) {
            size_t len = strlen(names[n]);
            if (strncmp(arg, names[n], len) == 0 && (arg[len] == '=' || arg[len] == '\0')) {
                if (arg[len] == '=')
                    value = arg + len + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else
                    cli_die(EXIT_USAGE, "%s needs a value (see 'protood help metrics')", names[n]);
                if (n == 0)
                    id = value;
                else if (n == 1)
                    ood = value;
                else
                    fpr = cli_parse_fpr(value);
            }
        }
        if (value)
            continue;
        if (strcmp(arg, "--json") == 0)
            json = 1;
        else
            cli_die(EXIT_USAGE, "metrics: unknown argument '%s' (see 'protood help metrics')", arg);
    }
    if (!id || !ood)
        cli_die(EXIT_USAGE, "metrics: --id ID_SCORES.npy and --ood OOD_SCORES.npy are required");
    int64_t n_in, n_out;
    float *s_in = cli_read_scores(id, &n_in);
    float *s_out = cli_read_scores(ood, &n_out);
    cli_metrics m;
    cli_evaluate(n_in, s_in, n_out, s_out, fpr, ood, &m);
    const char *name = ood;
    cli_report("precomputed scores", -1, fpr, 1, &name, &m, json);
    free(s_in);
    free(s_out);
    return 0;
}
