/* Errors, file loading and progress for the protood tool. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_die(int code, const char *fmt, ...)
{
    cli_progress_end();
    va_list ap;
    va_start(ap, fmt);
    fputs("protood: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

/* The library's message starts with the function name and often the path
 * ("protood_npy_info: path 'x.npy': truncated data ..."); a user wants what follows, prefixed
 * with the name they gave. */
void cli_die_lib(const char *what, protood_status st)
{
    const char *msg = protood_last_error();
    const char *colon = strstr(msg, ": ");
    if (strncmp(msg, "protood_", 8) == 0 && colon)
        msg = colon + 2;
    if (strncmp(msg, "path '", 6) == 0 && (colon = strstr(msg + 6, "': ")) != NULL)
        msg = colon + 3;
    if (!*msg)
        msg = protood_status_string(st);
    cli_die(EXIT_DATA, "%s: %s", what, msg);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        cli_die(EXIT_DATA, "out of memory (%zu bytes)", n);
    return p;
}

void cli_read_features(const char *path, cli_matrix *m)
{
    int32_t dtype;
    protood_status st = protood_npy_info(path, &dtype, &m->rows, &m->cols);
    if (st != PROTOOD_OK)
        cli_die_lib(path, st);
    if (dtype != PROTOOD_DTYPE_F32 && dtype != PROTOOD_DTYPE_F64 && dtype != PROTOOD_DTYPE_F16)
        cli_die(EXIT_DATA, "%s: features must be float32, float64 or float16, not integers", path);
    if (m->rows < 1)
        cli_die(EXIT_DATA, "%s: the file holds no rows", path);
    m->path = path;
    m->data = xmalloc((size_t)m->rows * (size_t)m->cols * sizeof(float));
    if ((st = protood_npy_read_f32(path, m->rows, m->cols, m->data)) != PROTOOD_OK)
        cli_die_lib(path, st);
}

int32_t *cli_read_labels(const char *path, int64_t n, int64_t *n_classes)
{
    int64_t rows, cols;
    protood_status st = protood_npy_info(path, NULL, &rows, &cols);
    if (st != PROTOOD_OK)
        cli_die_lib(path, st);
    if (rows != n || cols != 1)
        cli_die(EXIT_DATA, "%s: %lld x %lld labels do not match the %lld training rows", path, (long long)rows,
                (long long)cols, (long long)n);
    int32_t *y = xmalloc((size_t)n * sizeof *y);
    if ((st = protood_npy_read_i32(path, n, y)) != PROTOOD_OK)
        cli_die_lib(path, st);
    int32_t max = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0)
            cli_die(EXIT_DATA, "%s: label %d at row %lld is negative", path, y[i], (long long)i);
        max = y[i] > max ? y[i] : max;
    }
    *n_classes = (int64_t)max + 1;
    return y;
}

float *cli_read_scores(const char *path, int64_t *n)
{
    int64_t rows, cols;
    protood_status st = protood_npy_info(path, NULL, &rows, &cols);
    if (st != PROTOOD_OK)
        cli_die_lib(path, st);
    if (cols != 1)
        cli_die(EXIT_DATA, "%s: scores must be a vector, the file holds %lld x %lld", path, (long long)rows,
                (long long)cols);
    if (rows < 1)
        cli_die(EXIT_DATA, "%s: the file holds no scores", path);
    float *s = xmalloc((size_t)rows * sizeof *s);
    if ((st = protood_npy_read_f32(path, rows, 1, s)) != PROTOOD_OK)
        cli_die_lib(path, st);
    *n = rows;
    return s;
}

/* ---- progress ------------------------------------------------------------------------------ */

static struct {
    int enabled, active, drawn;
    double delay;   /* seconds before the bar appears: 1, or PROTOOD_PROGRESS_DELAY */
    const char *label;
    int64_t total;
    struct timespec start;
} progress;

void cli_progress_enable(int enabled)
{
    progress.enabled = enabled && isatty(STDERR_FILENO);
    const char *delay = getenv("PROTOOD_PROGRESS_DELAY");
    progress.delay = delay && *delay ? atof(delay) : 1.0;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + 1e-9 * (double)(now.tv_nsec - t0->tv_nsec);
}

void cli_progress_start(const char *label, int64_t total)
{
    progress.active = progress.enabled;
    progress.drawn = 0;
    progress.label = label;
    progress.total = total > 0 ? total : 1;
    clock_gettime(CLOCK_MONOTONIC, &progress.start);
}

void cli_progress_update(int64_t done)
{
    if (!progress.active)
        return;
    double elapsed = seconds_since(&progress.start);
    if (elapsed < progress.delay) /* short phases stay silent */
        return;
    const int width = 30;
    int filled = (int)(width * done / progress.total);
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-24.24s [%s] %3d%%  %.1fs", progress.label, bar, (int)(100 * done / progress.total),
            elapsed);
    fflush(stderr);
    progress.drawn = 1;
}

void cli_progress_end(void)
{
    if (progress.active && progress.drawn)
        fprintf(stderr, "\r\033[K");
    progress.active = 0;
    progress.drawn = 0;
}
