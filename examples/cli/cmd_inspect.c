/* protood inspect: what a .npy, bank or scorer file holds, and whether it is intact. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int inspect_npy(const char *path)
{
    static const char *dtypes[] = {"?", "float32", "float64", "float16", "int32", "int64"};
    int32_t dtype;
    int64_t rows, cols;
    protood_status st = protood_npy_info(path, &dtype, &rows, &cols);
    if (st != PROTOOD_OK)
        cli_die_lib(path, st);
    printf("%s: NumPy array, %lld x %lld %s (header and size consistent)\n", path, (long long)rows,
           (long long)cols, dtype >= 1 && dtype <= 5 ? dtypes[dtype] : dtypes[0]);
    return 0;
}

static void print_bank(const char *path, const protood_bank *bank)
{
    static const char *names[] = {NULL, "momentum", "temperature", "sinkhorn_epsilon", "sinkhorn_iters", "topk",
                                  "lambda_pcon", "pcon_temperature", "comp_weight", "dis_base_temperature",
                                  "comp_base_temperature"};
    int64_t c, k, d;
    protood_bank_shape(bank, &c, &k, &d);
    printf("%s: prototype bank, checksum ok\n", path);
    printf("  classes %lld, prototypes per class %lld, dimension %lld (%lld prototypes)\n", (long long)c,
           (long long)k, (long long)d, (long long)(c * k));
    for (int32_t key = 1; key <= 10; key++) {
        double v;
        protood_bank_get_param(bank, key, &v);
        printf("  %-22s %g\n", names[key], v);
    }
}

static void print_scorer(const char *path, const protood_scorer *scorer)
{
    static const char *kinds[] = {"?", "knn", "maha", "ssd", "proto"};
    int32_t kind, fitted;
    int64_t dim;
    protood_scorer_info(scorer, &kind, &dim, &fitted);
    double k, normalize;
    protood_scorer_get_param(scorer, PROTOOD_SCORER_K, &k);
    protood_scorer_get_param(scorer, PROTOOD_SCORER_NORMALIZE, &normalize);
    printf("%s: scorer, checksum ok\n", path);
    printf("  method %s, dimension %lld, %s\n", kind >= 1 && kind <= 4 ? kinds[kind] : kinds[0], (long long)dim,
           fitted ? "fitted" : "not fitted");
    if (kind == PROTOOD_SCORER_KNN)
        printf("  k %g\n", k);
    printf("  normalize %s\n", normalize != 0 ? "on" : "off");
}

int cli_inspect(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        cli_die(EXIT_DATA, "%s: cannot open", path);
    unsigned char head[8] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
        return inspect_npy(path);
    if (got == 8 && memcmp(head, "PROTOODB", 8) == 0) {
        protood_bank *bank;
        protood_status st = protood_bank_load(&bank, path);
        if (st != PROTOOD_OK)
            cli_die_lib(path, st); /* names the checksum or format problem */
        print_bank(path, bank);
        protood_bank_free(bank);
        return 0;
    }
    protood_scorer *scorer;
    protood_status st = protood_scorer_load(&scorer, path);
    if (st == PROTOOD_OK) {
        print_scorer(path, scorer);
        protood_scorer_free(scorer);
        return 0;
    }
    if (got == 8 && memcmp(head, "POODSCOR", 8) == 0)
        cli_die_lib(path, st);
    cli_die(EXIT_DATA, "%s: not a .npy, bank or scorer file", path);
}
