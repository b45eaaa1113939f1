#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/protood-test-XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    ck_assert_msg(dir != NULL, "mkdtemp failed: %s", strerror(errno));
    return strdup(dir);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void tu_write_bytes(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
}

unsigned char *tu_read_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

tu_fixture *tu_fixture_load(const char *case_name)
{
    const char *root = getenv("PROTOOD_FIXTURES");
    ck_assert_msg(root && *root, "PROTOOD_FIXTURES is not set (meson test sets it)");
    tu_fixture *fx = calloc(1, sizeof *fx);
    fx->dir = tu_path(root, case_name);
    char *params = tu_path(fx->dir, "params.txt");
    FILE *f = fopen(params, "r");
    ck_assert_msg(f != NULL, "fixture %s: cannot open %s", case_name, params);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char key[48], value[128];
        if (sscanf(line, "%47s %127s", key, value) != 2)
            continue;
        char *end;
        double v = strtod(value, &end);
        if (*end != '\0')
            continue; /* non-numeric values (method names) are not needed by the tests */
        ck_assert_int_lt(fx->n_params, 64);
        strcpy(fx->keys[fx->n_params], key);
        fx->values[fx->n_params++] = v;
    }
    fclose(f);
    free(params);
    return fx;
}

void tu_fixture_free(tu_fixture *fx)
{
    if (!fx)
        return;
    free(fx->dir);
    free(fx);
}

int tu_fixture_has(const tu_fixture *fx, const char *key)
{
    for (int i = 0; i < fx->n_params; i++)
        if (strcmp(fx->keys[i], key) == 0)
            return 1;
    return 0;
}

double tu_fixture_param(const tu_fixture *fx, const char *key)
{
    for (int i = 0; i < fx->n_params; i++)
        if (strcmp(fx->keys[i], key) == 0)
            return fx->values[i];
    ck_abort_msg("fixture %s: no parameter '%s'", fx->dir, key);
    return NAN;
}

static char *fixture_file(const tu_fixture *fx, const char *file, int64_t *rows, int64_t *cols)
{
    char *path = tu_path(fx->dir, file);
    protood_status st = protood_npy_info(path, NULL, rows, cols);
    ck_assert_msg(st == PROTOOD_OK, "fixture file %s: %s", path, protood_last_error());
    return path;
}

double *tu_fixture_f64(const tu_fixture *fx, const char *file, int64_t *rows, int64_t *cols)
{
    int64_t r, c;
    char *path = fixture_file(fx, file, &r, &c);
    double *out = malloc((size_t)(r * c + 1) * sizeof *out);
    ck_assert_msg(protood_npy_read_f64(path, r, c, out) == PROTOOD_OK, "%s", protood_last_error());
    free(path);
    if (rows)
        *rows = r;
    if (cols)
        *cols = c;
    return out;
}

float *tu_fixture_f32(const tu_fixture *fx, const char *file, int64_t *rows, int64_t *cols)
{
    int64_t r, c;
    char *path = fixture_file(fx, file, &r, &c);
    float *out = malloc((size_t)(r * c + 1) * sizeof *out);
    ck_assert_msg(protood_npy_read_f32(path, r, c, out) == PROTOOD_OK, "%s", protood_last_error());
    free(path);
    if (rows)
        *rows = r;
    if (cols)
        *cols = c;
    return out;
}

int32_t *tu_fixture_i32(const tu_fixture *fx, const char *file, int64_t *n)
{
    int64_t r, c;
    char *path = fixture_file(fx, file, &r, &c);
    ck_assert_int_eq(c, 1);
    int32_t *out = malloc((size_t)(r + 1) * sizeof *out);
    ck_assert_msg(protood_npy_read_i32(path, r, out) == PROTOOD_OK, "%s", protood_last_error());
    free(path);
    *n = r;
    return out;
}

void tu_assert_close_f32_f64(const float *got, const double *want, size_t n, double tol, const char *what)
{
    double scale = 1.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > scale)
            scale = fabs(want[i]);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= tol * scale,
                      "%s[%zu] = %.9g, expected %.9g (tolerance %g)", what, i, (double)got[i], want[i],
                      tol * scale);
}

typedef struct score_job {
    const protood_scorer *s;
    int64_t m;
    const float *q;
    float *out;
    int reps;
    protood_status st;
} score_job;

static void *run_score_job(void *arg)
{
    score_job *j = arg;
    for (int rep = 0; rep < j->reps && j->st == PROTOOD_OK; rep++)
        j->st = protood_scorer_score(j->s, j->m, j->q, j->out);
    return NULL;
}

void tu_assert_concurrent_scores(const protood_scorer *s, int n_threads, const int64_t *m, float *const *q,
                                 float *const *want, int reps)
{
    score_job *jobs = calloc((size_t)n_threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    for (int t = 0; t < n_threads; t++)
        jobs[t] = (score_job){s, m[t], q[t], calloc((size_t)m[t], sizeof(float)), reps, PROTOOD_OK};
    for (int t = 0; t < n_threads; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, run_score_job, &jobs[t]), 0);
    for (int t = 0; t < n_threads; t++)
        ck_assert_int_eq(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < n_threads; t++) {
        ck_assert_msg(jobs[t].st == PROTOOD_OK, "thread %d: %s", t, protood_status_string(jobs[t].st));
        ck_assert_mem_eq(jobs[t].out, want[t], (size_t)m[t] * sizeof(float));
        free(jobs[t].out);
    }
    free(jobs);
    free(th);
}
