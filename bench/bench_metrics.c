/* Time AUROC + FPR95 (the ROC convention) on two .npy score files, as a user evaluating a detector
 * would call them: both functions, each sorting its own copy. Prints the median of `reps` timed
 * repetitions after one warm-up call, and the values, for bench/metrics.py to compare.
 *
 * usage: bench_metrics scores_in.npy scores_out.npy reps */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <protood/protood.h>

static float *load(const char *path, int64_t *n)
{
    int32_t dtype;
    int64_t cols;
    if (protood_npy_info(path, &dtype, n, &cols) != PROTOOD_OK || cols != 1)
        return NULL;
    float *x = malloc((size_t)*n * sizeof *x);
    if (x && protood_npy_read_f32(path, *n, 1, x) != PROTOOD_OK) {
        free(x);
        return NULL;
    }
    return x;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s scores_in.npy scores_out.npy reps\n", argv[0]);
        return 2;
    }
    int64_t n_in, n_out;
    float *s_in = load(argv[1], &n_in), *s_out = load(argv[2], &n_out);
    int reps = atoi(argv[3]);
    if (!s_in || !s_out || reps < 1) {
        fprintf(stderr, "cannot read the scores: %s\n", protood_last_error());
        return 1;
    }
    double *t = malloc((size_t)reps * sizeof *t);
    double auroc = 0, fpr = 0;
    for (int r = -1; r < reps; r++) {
        double t0 = now_ms();
        if (protood_auroc(n_in, s_in, n_out, s_out, &auroc) != PROTOOD_OK ||
            protood_fpr_at_tpr(n_in, s_in, n_out, s_out, 0.95, PROTOOD_FPR_ROC, &fpr) != PROTOOD_OK) {
            fprintf(stderr, "%s\n", protood_last_error());
            return 1;
        }
        if (r >= 0)
            t[r] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("median_ms=%.6f auroc=%.17g fpr95=%.17g\n", t[reps / 2], auroc, fpr);
    free(t);
    free(s_in);
    free(s_out);
    return 0;
}
