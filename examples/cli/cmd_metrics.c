/* protood metrics: FPR95 / AUROC / AUPR of scores computed elsewhere. */
#include <stdlib.h>

#include "cli.h"

int cli_metrics_cmd(const cli_metrics_args *a)
{
    const char *id = a->id, *ood = a->ood;
    int32_t fpr = a->fpr;
    int json = a->json;
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
