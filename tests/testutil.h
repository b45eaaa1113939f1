/* Shared helpers for the Check suites: running a suite, temporary directories, fixtures. */
#ifndef PROTOOD_TESTUTIL_H
#define PROTOOD_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "protood.h"

/* Run every case of `s` and return the process exit code (0 when all passed). */
int tu_run_suite(Suite *s);

/* A fresh empty directory under $TMPDIR (removed with its content by tu_rmtree). */
char *tu_mkdtemp(void);
void tu_rmtree(const char *dir);
/* dir + "/" + name, malloc'd. */
char *tu_path(const char *dir, const char *name);
/* Write raw bytes to a file (not atomic: this is how tests make malformed files). */
void tu_write_bytes(const char *path, const void *data, size_t size);
/* Whole file into a malloc'd buffer; size in *size. */
unsigned char *tu_read_bytes(const char *path, size_t *size);

/* ---- Reference cases from ../shared/fixtures/<case>/ ------------------------------------ */

typedef struct tu_fixture {
    char *dir;
    int n_params;
    char keys[64][48];
    double values[64];
} tu_fixture;

/* Load params.txt of a case; fails the current test if the case is missing. */
tu_fixture *tu_fixture_load(const char *case_name);
void tu_fixture_free(tu_fixture *fx);
/* A parameter or scalar expected output; fails the test if absent. */
double tu_fixture_param(const tu_fixture *fx, const char *key);
int tu_fixture_has(const tu_fixture *fx, const char *key);
/* An array of the case as float64 / float32 / int32, malloc'd; its shape in rows/cols
 * (1-D arrays: cols = 1). Fails the test if absent or unreadable. */
double *tu_fixture_f64(const tu_fixture *fx, const char *file, int64_t *rows, int64_t *cols);
float *tu_fixture_f32(const tu_fixture *fx, const char *file, int64_t *rows, int64_t *cols);
int32_t *tu_fixture_i32(const tu_fixture *fx, const char *file, int64_t *n);

/* n_threads threads score with one const scorer at the same time, each its own queries q[t]
 * (m[t] rows), `reps` times; every result must equal want[t] bit for bit. */
void tu_assert_concurrent_scores(const protood_scorer *s, int n_threads, const int64_t *m, float *const *q,
                                 float *const *want, int reps);

/* Assert |a - b| <= tol * max(scale, 1) element-wise, with the index in the failure message. */
void tu_assert_close_f32_f64(const float *got, const double *want, size_t n, double tol, const char *what);

#endif
