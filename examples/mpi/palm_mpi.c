/* Data-parallel PALM training steps and a sharded KNN scorer over MPI (docs/distributed.md).
 *
 *   mpirun -np 3 palm_mpi            check: every rank's results against a single process
 *   mpirun -np 4 palm_mpi --bench    time steps of the CIFAR-100 shape (C = 100, K = 6, D = 128)
 *
 * Each rank generates the same global batch from a seed (in a real program each rank's data loader
 * yields its own rows) and passes only its share of the rows to protood_palm_step; the library
 * exchanges what couples the rows through the sum-allreduce below. In check mode rank 0 also runs
 * the single-process steps on the whole batch and broadcasts the results; every rank compares its
 * losses, bank and gradient rows, and its KNN and Mahalanobis scores, and the program exits
 * non-zero on any mismatch beyond SPEC.md §8. */
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protood.h"

/* ---- the reducer: MPI_Allreduce(MPI_SUM), counting what it sends ------------------------------ */

typedef struct mpi_reducer {
    MPI_Comm comm;
    long long calls, numbers;
    double seconds;   /* spent inside MPI_Allreduce (waiting for the slowest rank included) */
} mpi_reducer;

static int32_t mpi_allreduce(void *user, double *buf, int64_t count)
{
    mpi_reducer *r = user;
    r->calls++;
    r->numbers += count;
    double t0 = MPI_Wtime();
    while (count > 0) { /* MPI counts are int */
        int part = count > INT_MAX ? INT_MAX : (int)count;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf, part, MPI_DOUBLE, MPI_SUM, r->comm);
        if (rc != MPI_SUCCESS)
            return rc;
        buf += part;
        count -= part;
    }
    r->seconds += MPI_Wtime() - t0;
    return 0;
}

/* ---- data ------------------------------------------------------------------------------------ */

static unsigned long long rng;
static double uniform(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void fill(float *x, int64_t count, unsigned long long seed)
{
    rng = seed;
    for (int64_t k = 0; k < count; k++)
        x[k] = (float)(2.0 * uniform() - 1.0);
}

static void fill_labels(int32_t *y, int64_t n, int64_t classes, unsigned long long seed)
{
    rng = seed;
    for (int64_t i = 0; i < n; i++)
        y[i] = (int32_t)(uniform() * (double)classes);
}

/* rank r holds rows [first(r), first(r + 1)) of n: shares differ by at most one row */
static int64_t first_row(int64_t n, int r, int size)
{
    return n * r / size;
}

#define CHECK(call)                                                                                    \
    do {                                                                                               \
        protood_status st_ = (call);                                                                   \
        if (st_ != PROTOOD_OK) {                                                                       \
            fprintf(stderr, "rank %d: %s failed: %s\n", rank, #call, protood_last_error());            \
            MPI_Abort(MPI_COMM_WORLD, 2);                                                              \
        }                                                                                              \
    } while (0)

static int rank, size;
static long long mismatches;

static void compare(const char *what, const float *got, const float *want, int64_t n, double tol)
{
    double scale = 0.0, worst = 0.0;
    for (int64_t k = 0; k < n; k++)
        scale = fmax(scale, fabs((double)want[k]));
    for (int64_t k = 0; k < n; k++)
        worst = fmax(worst, fabs((double)got[k] - (double)want[k]));
    if (worst > tol * scale) {
        fprintf(stderr, "rank %d: %s differs by %g (scale %g)\n", rank, what, worst, scale);
        mismatches++;
    }
}

static void compare_rel(const char *what, const float *got, const float *want, int64_t n, double tol)
{
    for (int64_t k = 0; k < n; k++)
        if (fabs((double)got[k] - want[k]) > tol * fabs((double)want[k])) {
            fprintf(stderr, "rank %d: %s[%lld] = %.9g, single process %.9g\n", rank, what, (long long)k,
                    (double)got[k], (double)want[k]);
            mismatches++;
            return;
        }
}

/* ---- check mode -------------------------------------------------------------------------------- */

static void check_palm(void)
{
    const int64_t C = 10, K = 4, D = 32, N = 257, steps = 4, P = C * K;
    int64_t lo = first_row(N, rank, size), n = first_row(N, rank + 1, size) - lo;
    float *h = malloc((size_t)(N * D) * sizeof *h), *grad = malloc((size_t)(n * D) * sizeof *grad);
    float *want_grad = malloc((size_t)(N * D) * sizeof *want_grad);
    float *bank_got = malloc((size_t)(P * D) * sizeof *bank_got), *bank_want = malloc((size_t)(P * D) * sizeof *bank_want);
    int32_t *y = malloc((size_t)N * sizeof *y);
    protood_bank *bank, *single = NULL;
    CHECK(protood_bank_create(&bank, C, K, D));
    CHECK(protood_bank_init_random(bank, PROTOOD_INIT_POSITIVE, 1));   /* the same seed on every rank */
    CHECK(protood_bank_set_param(bank, PROTOOD_BANK_MOMENTUM, 0.9));
    if (rank == 0)
        CHECK(protood_bank_clone(&single, bank));   /* a clone carries no reducer */
    mpi_reducer red = {MPI_COMM_WORLD, 0, 0, 0.0};
    CHECK(protood_bank_set_reducer(bank, mpi_allreduce, &red, rank, size));
    for (int64_t t = 0; t < steps; t++) {
        fill(h, N * D, 1000 + (unsigned long long)t);
        fill_labels(y, N, C, 2000 + (unsigned long long)t);
        double losses[3], want_losses[3];
        CHECK(protood_palm_step(bank, n, h + lo * D, y + lo, losses, grad));
        if (rank == 0)
            CHECK(protood_palm_step(single, N, h, y, want_losses, want_grad));
        MPI_Bcast(want_losses, 3, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        MPI_Bcast(want_grad, (int)(N * D), MPI_FLOAT, 0, MPI_COMM_WORLD);
        for (int k = 0; k < 3; k++)
            if (fabs(losses[k] - want_losses[k]) > 1e-5 * fabs(want_losses[k])) {
                fprintf(stderr, "rank %d step %lld: loss[%d] = %.10g, single process %.10g\n", rank, (long long)t, k,
                        losses[k], want_losses[k]);
                mismatches++;
            }
        compare("gradient rows", grad, want_grad + lo * D, n * D, 1e-4);
    }
    CHECK(protood_bank_get_prototypes(bank, bank_got));
    if (rank == 0)
        CHECK(protood_bank_get_prototypes(single, bank_want));
    MPI_Bcast(bank_want, (int)(P * D), MPI_FLOAT, 0, MPI_COMM_WORLD);
    compare("prototypes", bank_got, bank_want, P * D, 1e-4);
    if (rank == 0)
        printf("palm: %lld steps of N = %lld rows on %d ranks (this rank %lld rows): %lld exchanges, "
               "%lld doubles per step\n", (long long)steps, (long long)N, size, (long long)n,
               red.calls / steps, red.numbers / steps);
    protood_bank_free(bank);
    protood_bank_free(single);
    free(h);
    free(grad);
    free(want_grad);
    free(bank_got);
    free(bank_want);
    free(y);
}

static void check_scorer(int32_t kind)
{
    const int64_t D = 24, N = 1001, M = 300, C = 7;
    int64_t lo = first_row(N, rank, size), n = first_row(N, rank + 1, size) - lo;
    float *x = malloc((size_t)(N * D) * sizeof *x), *q = malloc((size_t)(M * D) * sizeof *q);
    float *got = malloc((size_t)M * sizeof *got), *want = malloc((size_t)M * sizeof *want);
    int32_t *y = malloc((size_t)N * sizeof *y);
    fill(x, N * D, 31);
    fill(q, M * D, 32);
    fill_labels(y, N, C, 33);
    int maha = kind == PROTOOD_SCORER_MAHALANOBIS;
    mpi_reducer red = {MPI_COMM_WORLD, 0, 0, 0.0};
    protood_scorer *sc;
    CHECK(protood_scorer_create(&sc, kind, D));
    CHECK(protood_scorer_set_param(sc, PROTOOD_SCORER_K, 50));
    CHECK(protood_scorer_set_reducer(sc, mpi_allreduce, &red, rank, size));
    CHECK(protood_scorer_fit(sc, n, x + lo * D, maha ? y + lo : NULL, maha ? C : 0));
    CHECK(protood_scorer_score(sc, M, q, got));
    if (rank == 0) {
        protood_scorer *single;
        CHECK(protood_scorer_create(&single, kind, D));
        CHECK(protood_scorer_set_param(single, PROTOOD_SCORER_K, 50));
        CHECK(protood_scorer_fit(single, N, x, maha ? y : NULL, maha ? C : 0));
        CHECK(protood_scorer_score(single, M, q, want));
        protood_scorer_free(single);
    }
    MPI_Bcast(want, (int)M, MPI_FLOAT, 0, MPI_COMM_WORLD);
    /* KNN: the same double distances, so the same bits; Gaussian: summed moments, SPEC §8 */
    compare_rel(maha ? "mahalanobis score" : "knn score", got, want, M, maha ? 1e-4 : 0.0);
    if (rank == 0)
        printf("%s: fit on %lld rows over %d ranks, %lld queries: %lld exchanges, %lld doubles\n",
               maha ? "mahalanobis" : "knn", (long long)N, size, (long long)M, red.calls, red.numbers);
    protood_scorer_free(sc);
    free(x);
    free(q);
    free(got);
    free(want);
    free(y);
}

/* ---- bench mode -------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench(int64_t N, int64_t steps)
{
    const int64_t C = 100, K = 6, D = 128;
    int64_t lo = first_row(N, rank, size), n = first_row(N, rank + 1, size) - lo;
    float *h = malloc((size_t)(N * D) * sizeof *h), *grad = malloc((size_t)(n * D) * sizeof *grad);
    int32_t *y = malloc((size_t)N * sizeof *y);
    double *times = malloc((size_t)steps * sizeof *times);
    protood_bank *bank;
    CHECK(protood_bank_create(&bank, C, K, D));
    CHECK(protood_bank_init_random(bank, PROTOOD_INIT_POSITIVE, 1));
    mpi_reducer red = {MPI_COMM_WORLD, 0, 0, 0.0};
    CHECK(protood_bank_set_reducer(bank, mpi_allreduce, &red, rank, size));
    fill(h, N * D, 7);
    fill_labels(y, N, C, 8);
    double losses[3];
    CHECK(protood_palm_step(bank, n, h + lo * D, y + lo, losses, grad));   /* warm-up: workspace */
    red.calls = red.numbers = 0;
    red.seconds = 0.0;
    for (int64_t t = 0; t < steps; t++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        CHECK(protood_palm_step(bank, n, h + lo * D, y + lo, losses, grad));
        double dt = MPI_Wtime() - t0, slowest;
        MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        times[t] = slowest;
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    if (rank == 0)
        printf("bench: ranks %d, global batch %lld, rows per rank %lld, P = %lld, D = %lld: median step %.2f ms "
               "(rank 0 in the allreduce: %.2f ms), %lld exchanges and %lld doubles (%.1f KiB) per step per rank\n",
               size, (long long)N, (long long)n, (long long)(C * K), (long long)D, 1e3 * times[steps / 2],
               1e3 * red.seconds / (double)steps, red.calls / steps, red.numbers / steps,
               (double)red.numbers / (double)steps * 8.0 / 1024.0);
    protood_bank_free(bank);
    free(h);
    free(grad);
    free(y);
    free(times);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* errors come back to the reducer, which turns them into PROTOOD_E_CALLBACK */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    protood_set_threads(1);   /* one BLAS thread per rank: ranks already fill the cores */
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        int64_t N = argc > 2 ? atoll(argv[2]) : 1024, steps = argc > 3 ? atoll(argv[3]) : 21;
        bench(N, steps);
        MPI_Finalize();
        return 0;
    }
    check_palm();
    check_scorer(PROTOOD_SCORER_KNN);
    check_scorer(PROTOOD_SCORER_MAHALANOBIS);
    long long total = 0;
    MPI_Allreduce(&mismatches, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%s: %lld mismatches on %d ranks\n", total ? "FAIL" : "OK", total, size);
    MPI_Finalize();
    return total ? 1 : 0;
}
