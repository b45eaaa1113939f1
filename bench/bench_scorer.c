/* Scorer benchmarks, the libprotood side (bench/scorer_bench.py runs this and the Python anchors in
 * the same run and prints the table).
 *
 *   bench_scorer gen DIR                     write the data sets (below) as .npy into DIR
 *   bench_scorer knn DIR D K REPS            KNN score of the 10k queries against the 50k rows
 *   bench_scorer sgemm DIR D REPS            the bare 10k x 50k x D sgemm (A B^T) into a 2 GB output
 *   bench_scorer sgemm_tiled DIR D REPS      the same products in the KNN's tiles (256 queries x 2048
 *                                            rows, 512 x 1024 from D = 384; a reused buffer), without
 *                                            any selection: the GEMM part of the KNN, so KNN / this =
 *                                            selection overhead
 *   bench_scorer maha_fit DIR D REPS         Mahalanobis fit on 50k rows, 100 classes
 *   bench_scorer maha_score DIR D REPS       Mahalanobis score of the 10k queries
 *
 * Each timing command runs once untimed (page faults, thread start-up), then prints "name rep
 * seconds" for every repetition and "name median seconds". Threads are
 * set by the caller (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS). Data: 100 Gaussian classes in D
 * dimensions (means N(0, 1), noise N(0, 1)), 50000 training rows with labels, 10000 queries from
 * the same classes; fixed seeds, so every run and every tool sees the same numbers. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "protood.h"

enum { N_TRAIN = 50000, N_TEST = 10000, N_CLASSES = 100 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, double *t, int reps)
{
    for (int r = 0; r < reps; r++)
        printf("%s rep %.6f\n", name, t[r]);
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("%s median %.6f\n", name, t[reps / 2]);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_scorer: %s: %s\n", what, protood_last_error());
    exit(1);
}

static uint64_t rng_state = 88172645463325252ull;

static double normal(void)
{
    /* Box-Muller on xorshift64*: reproducible, and fast enough for a few million draws. */
    double u[2];
    for (int i = 0; i < 2; i++) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        u[i] = ((double)((rng_state * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static void gen(const char *dir)
{
    static const int dims[] = {128, 512};
    char path[4096];
    int32_t *labels = malloc(sizeof(int32_t) * N_TRAIN);
    for (int i = 0; i < N_TRAIN; i++)
        labels[i] = i % N_CLASSES;
    snprintf(path, sizeof path, "%s/train_labels.npy", dir);
    if (protood_npy_write_i32(path, N_TRAIN, labels) != PROTOOD_OK)
        die(path);
    for (int k = 0; k < 2; k++) {
        int d = dims[k];
        float *means = malloc(sizeof(float) * N_CLASSES * (size_t)d);
        float *x = malloc(sizeof(float) * N_TRAIN * (size_t)d);
        for (int i = 0; i < N_CLASSES * d; i++)
            means[i] = (float)normal();
        for (int i = 0; i < N_TRAIN; i++)
            for (int j = 0; j < d; j++)
                x[(size_t)i * d + j] = means[labels[i] * d + j] + (float)normal();
        snprintf(path, sizeof path, "%s/train_%d.npy", dir, d);
        if (protood_npy_write_f32(path, N_TRAIN, d, x) != PROTOOD_OK)
            die(path);
        for (int i = 0; i < N_TEST; i++)
            for (int j = 0; j < d; j++)
                x[(size_t)i * d + j] = means[(i * 7) % N_CLASSES * d + j] + (float)normal();
        snprintf(path, sizeof path, "%s/test_%d.npy", dir, d);
        if (protood_npy_write_f32(path, N_TEST, d, x) != PROTOOD_OK)
            die(path);
        free(means);
        free(x);
    }
    free(labels);
}

static float *load(const char *dir, const char *name, int d, int64_t rows)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%d.npy", dir, name, d);
    float *x = malloc(sizeof(float) * (size_t)rows * (size_t)d);
    if (protood_npy_read_f32(path, rows, d, x) != PROTOOD_OK)
        die(path);
    return x;
}

static int32_t *load_labels(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/train_labels.npy", dir);
    int32_t *y = malloc(sizeof(int32_t) * N_TRAIN);
    if (protood_npy_read_i32(path, N_TRAIN, y) != PROTOOD_OK)
        die(path);
    return y;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "gen") == 0) {
        gen(argv[2]);
        return 0;
    }
    if (argc < 5) {
        fprintf(stderr, "usage: bench_scorer gen DIR | knn DIR D K REPS | sgemm DIR D REPS | "
                        "maha_fit DIR D REPS | maha_score DIR D REPS\n");
        return 2;
    }
    const char *cmd = argv[1], *dir = argv[2];
    int d = atoi(argv[3]);
    int reps = atoi(argv[argc - 1]);
    double *t = calloc((size_t)reps, sizeof *t);
    float *x = load(dir, "train", d, N_TRAIN), *q = load(dir, "test", d, N_TEST);
    float *scores = malloc(sizeof(float) * N_TEST);
    protood_scorer *s = NULL;

    if (strcmp(cmd, "knn") == 0) {
        int k = atoi(argv[4]);
        if (protood_scorer_create(&s, PROTOOD_SCORER_KNN, d) != PROTOOD_OK ||
            protood_scorer_set_param(s, PROTOOD_SCORER_K, k) != PROTOOD_OK ||
            protood_scorer_fit(s, N_TRAIN, x, NULL, 0) != PROTOOD_OK)
            die("knn fit");
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            if (protood_scorer_score(s, N_TEST, q, scores) != PROTOOD_OK)
                die("knn score");
            if (r >= 0)
                t[r] = now() - t0;
        }
        report("knn", t, reps);
        double sum = 0;
        for (int i = 0; i < N_TEST; i++)
            sum += scores[i];
        printf("knn checksum %.6f\n", sum);
    } else if (strcmp(cmd, "sgemm") == 0) {
        /* The output is touched first: page faults are not the GEMM's cost. */
        float *c = malloc(sizeof(float) * (size_t)N_TEST * N_TRAIN);
        memset(c, 0, sizeof(float) * (size_t)N_TEST * N_TRAIN);
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N_TEST, N_TRAIN, d, 1.0f, q, d, x, d, 0.0f, c,
                        N_TRAIN);
            if (r >= 0)
                t[r] = now() - t0;
        }
        report("sgemm", t, reps);
        free(c);
    } else if (strcmp(cmd, "sgemm_tiled") == 0) {
        /* The KNN's GEMM schedule: tiles of queries in parallel, each thread's BLAS on one thread
         * (OpenBLAS pthreads: switched globally, as the library does). */
        const int TQ = d < 384 ? 256 : 512, TN = d < 384 ? 2048 : 1024; /* as lib/scorer.c picks */
        int threads = 1;
#ifdef _OPENMP
        threads = omp_get_max_threads();
#endif
        float *buf = malloc(sizeof(float) * (size_t)TQ * (size_t)TN * (size_t)threads);
        for (int r = -1; r < reps; r++) {
            double t0 = now();
#if defined(PROTOOD_BLAS_OPENBLAS)
            int saved = openblas_get_num_threads();
            if (threads > 1)
                openblas_set_num_threads(1);
#endif
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
            for (int q0 = 0; q0 < N_TEST; q0 += TQ) {
                int tid = 0;
#ifdef _OPENMP
                tid = omp_get_thread_num();
#endif
                float *c = buf + (size_t)tid * TQ * TN;
                int rows = N_TEST - q0 < TQ ? N_TEST - q0 : TQ;
                for (int c0 = 0; c0 < N_TRAIN; c0 += TN) {
                    int cols = N_TRAIN - c0 < TN ? N_TRAIN - c0 : TN;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, 1.0f, q + (size_t)q0 * d, d,
                                x + (size_t)c0 * d, d, 0.0f, c, cols);
                }
            }
#if defined(PROTOOD_BLAS_OPENBLAS)
            openblas_set_num_threads(saved);
#endif
            if (r >= 0)
                t[r] = now() - t0;
        }
        report("sgemm_tiled", t, reps);
        free(buf);
    } else if (strcmp(cmd, "maha_fit") == 0 || strcmp(cmd, "maha_score") == 0) {
        int32_t *y = load_labels(dir);
        int fit_only = strcmp(cmd, "maha_fit") == 0;
        if (protood_scorer_create(&s, PROTOOD_SCORER_MAHALANOBIS, d) != PROTOOD_OK)
            die("maha create");
        for (int r = -1; r < (fit_only ? reps : 0); r++) {
            double t0 = now();
            if (protood_scorer_fit(s, N_TRAIN, x, y, N_CLASSES) != PROTOOD_OK)
                die("maha fit");
            if (r >= 0)
                t[r] = now() - t0;
        }
        if (fit_only) {
            report("maha_fit", t, reps);
        } else {
            for (int r = -1; r < reps; r++) {
                double t0 = now();
                if (protood_scorer_score(s, N_TEST, q, scores) != PROTOOD_OK)
                    die("maha score");
                if (r >= 0)
                    t[r] = now() - t0;
            }
            report("maha_score", t, reps);
            double sum = 0;
            for (int i = 0; i < N_TEST; i++)
                sum += scores[i];
            printf("maha_score checksum %.6f\n", sum);
        }
        free(y);
    } else {
        fprintf(stderr, "bench_scorer: unknown command %s\n", cmd);
        return 2;
    }
    protood_scorer_free(s);
    free(t);
    free(x);
    free(q);
    free(scores);
    return 0;
}
