/* Metrics of each OOD set and the two output forms: the papers' table and JSON. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_evaluate(int64_t n_in, const float *s_in, int64_t n_out, const float *s_out, int32_t convention,
                  const char *ood_name, cli_metrics *out)
{
    protood_status st;
    if ((st = protood_fpr_at_tpr(n_in, s_in, n_out, s_out, 0.95, convention, &out->fpr95)) != PROTOOD_OK ||
        (st = protood_auroc(n_in, s_in, n_out, s_out, &out->auroc)) != PROTOOD_OK ||
        (st = protood_aupr(n_in, s_in, n_out, s_out, PROTOOD_POSITIVE_IN, &out->aupr_in)) != PROTOOD_OK ||
        (st = protood_aupr(n_in, s_in, n_out, s_out, PROTOOD_POSITIVE_OUT, &out->aupr_out)) != PROTOOD_OK)
        cli_die_lib(ood_name, st);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_metrics(const cli_metrics *m)
{
    printf("{\"fpr95\": %.17g, \"auroc\": %.17g, \"aupr_in\": %.17g, \"aupr_out\": %.17g}", m->fpr95, m->auroc,
           m->aupr_in, m->aupr_out);
}

void cli_report(const char *method, int64_t k, int32_t convention, int n_sets, const char *const *names,
                const cli_metrics *m, int json)
{
    cli_metrics avg = {0, 0, 0, 0};
    for (int i = 0; i < n_sets; i++) {
        avg.fpr95 += m[i].fpr95 / n_sets;
        avg.auroc += m[i].auroc / n_sets;
        avg.aupr_in += m[i].aupr_in / n_sets;
        avg.aupr_out += m[i].aupr_out / n_sets;
    }
    if (json) {
        printf("{\"method\": ");
        json_string(method);
        if (k >= 0)
            printf(", \"k\": %lld", (long long)k);
        else
            printf(", \"k\": null");
        printf(", \"fpr_convention\": ");
        json_string(cli_fpr_name(convention));
        printf(", \"ood\": {");
        for (int i = 0; i < n_sets; i++) {
            printf(i ? ", " : "");
            json_string(names[i]);
            printf(": ");
            json_metrics(&m[i]);
        }
        printf("}, \"average\": ");
        json_metrics(&avg);
        printf("}\n");
        return;
    }
    int width = 7;
    for (int i = 0; i < n_sets; i++)
        if ((int)strlen(names[i]) > width)
            width = (int)strlen(names[i]);
    if (k >= 0)
        printf("method %s, k = %lld, FPR at 95%% TPR (%s convention); all values in %%\n\n", method, (long long)k,
               cli_fpr_name(convention));
    else
        printf("method %s, FPR at 95%% TPR (%s convention); all values in %%\n\n", method, cli_fpr_name(convention));
    printf("%-*s  %7s  %7s  %7s  %8s\n", width, "OOD set", "FPR95", "AUROC", "AUPR-In", "AUPR-Out");
    for (int i = 0; i <= n_sets; i++) {
        const cli_metrics *r = i < n_sets ? &m[i] : &avg;
        printf("%-*s  %7.2f  %7.2f  %7.2f  %8.2f\n", width, i < n_sets ? names[i] : "Average", 100 * r->fpr95,
               100 * r->auroc, 100 * r->aupr_in, 100 * r->aupr_out);
    }
}
