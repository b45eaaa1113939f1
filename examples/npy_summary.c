/* npy_summary: what a feature file holds, in a few lines.
 *
 *   npy_summary FEATURES.npy [LABELS.npy]
 *
 * Reads any supported .npy (float32/64/16, int32/64, either byte or memory order) with
 * libprotood, and prints its shape, the spread of the row norms (features for a hyperspherical
 * embedding are usually normalised by the scorer, so this shows how far they are from unit norm)
 * and, with labels, the class sizes. */
#include <math.h>
#include <protood/protood.h>
#include <stdio.h>
#include <stdlib.h>

static const char *dtype_name(int32_t dtype)
{
    static const char *names[] = {"?", "float32", "float64", "float16", "int32", "int64"};
    return dtype >= 1 && dtype <= 5 ? names[dtype] : names[0];
}

static int fail(const char *what)
{
    fprintf(stderr, "npy_summary: %s: %s\n", what, protood_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: npy_summary FEATURES.npy [LABELS.npy]\n");
        return 2;
    }
    int32_t dtype;
    int64_t rows, cols;
    if (protood_npy_info(argv[1], &dtype, &rows, &cols) != PROTOOD_OK)
        return fail(argv[1]);
    float *x = malloc((size_t)(rows * cols + 1) * sizeof *x);
    if (!x || protood_npy_read_f32(argv[1], rows, cols, x) != PROTOOD_OK)
        return fail(argv[1]);
    double lo = INFINITY, hi = 0, sum = 0;
    int64_t non_finite = 0;
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++)
            s += (double)x[i * cols + j] * x[i * cols + j];
        double norm = sqrt(s);
        if (!isfinite(norm)) {
            non_finite++;
            continue;
        }
        lo = norm < lo ? norm : lo;
        hi = norm > hi ? norm : hi;
        sum += norm;
    }
    printf("%s: %lld x %lld %s (libprotood %s)\n", argv[1], (long long)rows, (long long)cols,
           dtype_name(dtype), protood_version_string());
    if (rows > non_finite)
        printf("row norms: min %.4f  mean %.4f  max %.4f\n", lo, sum / (double)(rows - non_finite), hi);
    if (non_finite)
        printf("rows with NaN or Inf: %lld\n", (long long)non_finite);
    free(x);

    if (argc == 3) {
        int64_t n;
        if (protood_npy_info(argv[2], NULL, &n, NULL) != PROTOOD_OK)
            return fail(argv[2]);
        if (n != rows) {
            fprintf(stderr, "npy_summary: %s has %lld labels for %lld rows\n", argv[2], (long long)n,
                    (long long)rows);
            return 1;
        }
        int32_t *y = malloc((size_t)(n + 1) * sizeof *y);
        if (!y || protood_npy_read_i32(argv[2], n, y) != PROTOOD_OK)
            return fail(argv[2]);
        int32_t max_label = -1;
        for (int64_t i = 0; i < n; i++)
            max_label = y[i] > max_label ? y[i] : max_label;
        printf("classes: %d, sizes:", max_label + 1);
        for (int32_t c = 0; c <= max_label && c < 64; c++) {
            int64_t count = 0;
            for (int64_t i = 0; i < n; i++)
                count += y[i] == c;
            printf(" %lld", (long long)count);
        }
        printf("\n");
        free(y);
    }
    return 0;
}
