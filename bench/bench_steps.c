/* Times protood_palm_step (C=100, K=6, D=128, N=1024) and protood_cider_step (C=100, D=128,
 * N=1024) on the inputs written by `anchor_steps.py make-data DIR`, so that the torch anchor and
 * libprotood see the same numbers. Prints the median of the repetitions and the losses (a check
 * that both computed the same thing). Thread counts come from OMP_NUM_THREADS and
 * OPENBLAS_NUM_THREADS; bench/run_steps.sh sets them. Usage: bench_steps DIR [REPS [palm|cider]]
 * (one step only: its peak extra memory is then measured on its own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "protood.h"

#define C 100
#define K 6
#define D 128
#define N 1024

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of the whole process (all threads): at one thread, a figure that other jobs on a shared
 * machine disturb much less than the wall clock. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Peak resident set so far, KiB: its growth across the steps is the step's peak extra memory
 * (workspace, BLAS buffers), inputs and outputs being allocated before. */
static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check(protood_status st, const char *what)
{
    if (st != PROTOOD_OK) {
        fprintf(stderr, "bench_steps: %s: %s\n", what, protood_last_error());
        exit(1);
    }
}

static char *path(const char *dir, const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_steps DIR [REPS]\n");
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 15;
    const char *only = argc > 3 ? argv[3] : "";
    static float h[N * D], grad[N * D], palm_p[C * K * D], cider_p[C * D];
    static int32_t y[N];
    check(protood_npy_read_f32(path(argv[1], "h.npy"), N, D, h), "h.npy");
    check(protood_npy_read_i32(path(argv[1], "labels.npy"), N, y), "labels.npy");
    check(protood_npy_read_f32(path(argv[1], "palm_protos.npy"), C * K, D, palm_p), "palm_protos.npy");
    check(protood_npy_read_f32(path(argv[1], "cider_protos.npy"), C, D, cider_p), "cider_protos.npy");

    protood_bank *palm, *cider;
    check(protood_bank_create(&palm, C, K, D), "create");
    check(protood_bank_create(&cider, C, 1, D), "create");
    check(protood_bank_set_param(cider, PROTOOD_BANK_MOMENTUM, 0.5), "momentum");
    double *t = malloc((size_t)(reps + 1) * sizeof *t), *c = malloc((size_t)(reps + 1) * sizeof *c), losses[3];

    /* every repetition starts from the same bank (reset outside the timed region); the first call
     * grows the workspace and is not counted */
    long rss0 = peak_rss_kib(), rss1 = rss0;
    if (strcmp(only, "cider") != 0) {
        for (int r = -1; r < reps; r++) {
            check(protood_bank_set_prototypes(palm, palm_p), "set");
            double t0 = now_ms(), c0 = cpu_ms();
            check(protood_palm_step(palm, N, h, y, losses, grad), "palm_step");
            if (r >= 0) {
                t[r] = now_ms() - t0;
                c[r] = cpu_ms() - c0;
            }
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        qsort(c, (size_t)reps, sizeof *c, cmp_double);
        printf("protood palm_ms=%.3f cpu_ms=%.3f loss=%.6f mle=%.6f pcon=%.6f\n", t[reps / 2], c[reps / 2], losses[0],
               losses[1], losses[2]);
        rss1 = peak_rss_kib();
        printf("protood palm_peak_extra_kib=%ld\n", rss1 - rss0);
    }
    if (strcmp(only, "palm") != 0) {
        for (int r = -1; r < reps; r++) {
            check(protood_bank_set_prototypes(cider, cider_p), "set");
            double t0 = now_ms(), c0 = cpu_ms();
            check(protood_cider_step(cider, N, h, y, losses, grad), "cider_step");
            if (r >= 0) {
                t[r] = now_ms() - t0;
                c[r] = cpu_ms() - c0;
            }
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        qsort(c, (size_t)reps, sizeof *c, cmp_double);
        printf("protood cider_ms=%.3f cpu_ms=%.3f loss=%.6f comp=%.6f dis=%.6f\n", t[reps / 2], c[reps / 2], losses[0],
               losses[1], losses[2]);
        printf("protood cider_peak_extra_kib=%ld%s\n", peak_rss_kib() - rss1,
               only[0] ? "" : " (beyond the PALM step's peak; run 'cider' alone for its own)");
    }
    printf("protood build %s\n", protood_build_info());
    free(t);
    free(c);
    protood_bank_free(palm);
    protood_bank_free(cider);
    return 0;
}
