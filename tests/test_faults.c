/* Faults: every allocation of a call made to fail in turn (lib/alloc.h), a full disk and an
 * unwritable directory during save, a reducer failing at each of its calls. Each must be an error
 * with its status and message, with the handles, output pointers and files exactly as before. */
#include <dirent.h>
#include <stdio.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "testutil.h"

enum { D = 6, NC = 3, K = 2, N = 40, M = 9 };

static uint64_t rng;
static double uniform(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static float x[N * D], q[M * D];
static int32_t y[N];

static void make_data(void)
{
    rng = 7;
    for (int i = 0; i < N * D; i++)
        x[i] = (float)(uniform() - 0.3);
    for (int i = 0; i < M * D; i++)
        q[i] = (float)(uniform() - 0.3);
    for (int i = 0; i < N; i++)
        y[i] = i % NC;
}

/* A sum-allreduce over one participant is the identity; it takes the distributed code paths. */
static int32_t solo_reduce(void *user, double *buf, int64_t count)
{
    (void)user;
    (void)buf;
    (void)count;
    return 0;
}

/* Everything a call may touch, and a snapshot of it taken before the call. */
typedef struct world {
    protood_bank *bank;
    unsigned char *bank_bytes;
    size_t bank_size;
    protood_scorer *scorer;
    float scores[M];
    unsigned char *scorer_bytes;
    size_t scorer_size;
    char *dir, *path;
    unsigned char *file_bytes;
    size_t file_size;
    void *out; /* a constructor's output: must stay as set */
} world;

static void *const SENTINEL = (void *)&rng;

typedef struct fault_case {
    const char *name;
    int with_bank;      /* 1: a PALM bank (K = 2), 2: a CIDER bank (K = 1) */
    int bank_reducer;   /* attach solo_reduce to the bank */
    int32_t scorer_kind; /* a fitted scorer of this kind, 0 = none */
    int scorer_reducer;
    int with_file;      /* a file at w->path holding a saved bank (1) or scorer (2) */
    protood_status (*run)(world *w);
    int makes;          /* on success w->out holds a new bank (1) or scorer (2) */
} fault_case;

static void snapshot_bank(world *w)
{
    ck_assert_int_eq(protood_bank_to_buffer(w->bank, NULL, 0, &w->bank_size), PROTOOD_OK);
    w->bank_bytes = malloc(w->bank_size);
    ck_assert_int_eq(protood_bank_to_buffer(w->bank, w->bank_bytes, w->bank_size, &w->bank_size), PROTOOD_OK);
}

static world *setup(const fault_case *c)
{
    world *w = calloc(1, sizeof *w);
    w->out = SENTINEL;
    if (c->with_bank) {
        ck_assert_int_eq(protood_bank_create(&w->bank, NC, c->with_bank == 1 ? K : 1, D), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_init_random(w->bank, PROTOOD_INIT_SPHERE, 3), PROTOOD_OK);
        if (c->bank_reducer)
            ck_assert_int_eq(protood_bank_set_reducer(w->bank, solo_reduce, NULL, 0, 1), PROTOOD_OK);
        snapshot_bank(w);
    }
    if (c->scorer_kind) {
        ck_assert_int_eq(protood_scorer_create(&w->scorer, c->scorer_kind, D), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_param(w->scorer, PROTOOD_SCORER_K, 4), PROTOOD_OK);
        if (c->scorer_reducer)
            ck_assert_int_eq(protood_scorer_set_reducer(w->scorer, solo_reduce, NULL, 0, 1), PROTOOD_OK);
        /* Fitted on the last rows, so that a refit with all rows would change the scores. */
        protood_status st = c->scorer_kind == PROTOOD_SCORER_PROTOTYPE && w->bank
                                ? protood_scorer_fit_bank(w->scorer, w->bank)
                                : protood_scorer_fit(w->scorer, N / 2, x + N / 2 * D, y + N / 2, NC);
        ck_assert_msg(st == PROTOOD_OK, "%s", protood_last_error());
        ck_assert_int_eq(protood_scorer_score(w->scorer, M, q, w->scores), PROTOOD_OK);
        if (!c->scorer_reducer) {
            ck_assert_int_eq(protood_scorer_to_buffer(w->scorer, NULL, 0, &w->scorer_size), PROTOOD_OK);
            w->scorer_bytes = malloc(w->scorer_size);
            ck_assert_int_eq(protood_scorer_to_buffer(w->scorer, w->scorer_bytes, w->scorer_size, &w->scorer_size),
                             PROTOOD_OK);
        }
    }
    if (c->with_file) {
        w->dir = tu_mkdtemp();
        w->path = tu_path(w->dir, "saved");
        protood_status st = c->with_file == 1 ? protood_bank_save(w->bank, w->path)
                                              : protood_scorer_save(w->scorer, w->path);
        ck_assert_msg(st == PROTOOD_OK, "%s", protood_last_error());
        w->file_bytes = tu_read_bytes(w->path, &w->file_size);
    }
    return w;
}

/* The directory holds exactly the one file it held before (no temporary left behind). */
static void assert_dir_has_only(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        ck_assert_msg(strcmp(e->d_name, name) == 0, "unexpected file '%s' left in %s", e->d_name, dir);
        n++;
    }
    closedir(d);
    ck_assert_int_eq(n, 1);
}

static void assert_unchanged(const world *w, const char *what)
{
    ck_assert_msg(w->out == SENTINEL, "%s: output pointer written on failure", what);
    if (w->bank) {
        size_t size;
        ck_assert_int_eq(protood_bank_to_buffer(w->bank, NULL, 0, &size), PROTOOD_OK);
        ck_assert_msg(size == w->bank_size, "%s: bank size changed", what);
        unsigned char *now = malloc(size);
        ck_assert_int_eq(protood_bank_to_buffer(w->bank, now, size, &size), PROTOOD_OK);
        ck_assert_msg(memcmp(now, w->bank_bytes, size) == 0, "%s: bank changed", what);
        free(now);
    }
    if (w->scorer) {
        float now[M];
        ck_assert_int_eq(protood_scorer_score(w->scorer, M, q, now), PROTOOD_OK);
        ck_assert_msg(memcmp(now, w->scores, sizeof now) == 0, "%s: scorer changed", what);
    }
    if (w->path) {
        size_t size;
        unsigned char *now = tu_read_bytes(w->path, &size);
        ck_assert_msg(size == w->file_size && memcmp(now, w->file_bytes, size) == 0, "%s: file changed", what);
        free(now);
        assert_dir_has_only(w->dir, "saved");
    }
}

static void teardown(world *w)
{
    protood_bank_free(w->bank);
    free(w->bank_bytes);
    protood_scorer_free(w->scorer);
    free(w->scorer_bytes);
    if (w->dir) {
        tu_rmtree(w->dir);
        free(w->dir);
        free(w->path);
        free(w->file_bytes);
    }
    free(w);
}

/* Fail the 1st, 2nd, ... allocation of the call until it completes without reaching the injected
 * failure; every failure must be E_NOMEM with a message and change nothing. */
static void check_every_allocation(const fault_case *c)
{
    long failures = 0;
    for (long nth = 1;; nth++) {
        world *w = setup(c);
        pood_alloc_fail_nth(nth);
        protood_status st = c->run(w);
        int fired = pood_alloc_fault_fired();
        pood_alloc_fail_nth(0);
        if (!fired) {
            ck_assert_msg(st == PROTOOD_OK, "%s: %s", c->name, protood_last_error());
            ck_assert((w->out != SENTINEL) == (c->makes != 0));
            if (c->makes == 1)
                protood_bank_free(w->out);
            if (c->makes == 2)
                protood_scorer_free(w->out);
            teardown(w);
            break;
        }
        char what[96];
        snprintf(what, sizeof what, "%s, allocation %ld failing", c->name, nth);
        ck_assert_msg(st == PROTOOD_E_NOMEM, "%s: status %d (%s)", what, st, protood_last_error());
        ck_assert_msg(strstr(protood_last_error(), "memory") != NULL, "%s: message '%s'", what,
                      protood_last_error());
        assert_unchanged(w, what);
        teardown(w);
        failures++;
    }
    ck_assert_msg(failures > 0, "%s allocates nothing: the case tests nothing", c->name);
}

/* ---- the calls ------------------------------------------------------------------------------ */

static protood_status run_bank_create(world *w) { return protood_bank_create((protood_bank **)&w->out, NC, K, D); }
static protood_status run_bank_clone(world *w) { return protood_bank_clone((protood_bank **)&w->out, w->bank); }
static protood_status run_init_means(world *w) { return protood_bank_init_from_features(w->bank, N, x, y, 5); }
static protood_status run_init_kmeans(world *w) { return protood_bank_init_from_features(w->bank, N, x, y, 5); }

static protood_status run_palm_step(world *w)
{
    double losses[3];
    float grad[N * D];
    return protood_palm_step(w->bank, N, x, y, losses, grad);
}

static protood_status run_cider_step(world *w)
{
    double losses[3];
    float grad[N * D];
    return protood_cider_step(w->bank, N, x, y, losses, grad);
}

static protood_status run_palm_assign(world *w)
{
    float weights[N * NC * K];
    return protood_palm_assign(w->bank, N, x, y, weights);
}

static protood_status run_sinkhorn(world *w)
{
    (void)w;
    float assign[N * NC];
    return protood_sinkhorn(N, NC, x, 0.05, 3, assign);
}

static protood_status run_bank_save(world *w) { return protood_bank_save(w->bank, w->path); }
static protood_status run_bank_load(world *w) { return protood_bank_load((protood_bank **)&w->out, w->path); }

static protood_status run_bank_from_buffer(world *w)
{
    return protood_bank_from_buffer((protood_bank **)&w->out, w->bank_bytes, w->bank_size);
}

static protood_status run_scorer_create(world *w)
{
    return protood_scorer_create((protood_scorer **)&w->out, PROTOOD_SCORER_KNN, D);
}

static protood_status run_refit(world *w) { return protood_scorer_fit(w->scorer, N, x, y, NC); }
static protood_status run_fit_bank(world *w) { return protood_scorer_fit_bank(w->scorer, w->bank); }

static int32_t feed(void *user, int64_t first, int64_t count, float *rows, int32_t *labels)
{
    const float *src = user;
    memcpy(rows, src + first * D, (size_t)(count * D) * sizeof *rows);
    if (labels)
        memcpy(labels, y + first, (size_t)count * sizeof *labels);
    return 0;
}

static protood_status run_fit_stream(world *w) { return protood_scorer_fit_stream(w->scorer, N, 7, feed, x, NC); }

static protood_status run_score(world *w)
{
    float s[M];
    return protood_scorer_score(w->scorer, M, q, s);
}

static protood_status run_score_stream(world *w)
{
    float s[M];
    return protood_scorer_score_stream(w->scorer, M, 4, feed, q, s);
}

static protood_status run_scorer_save(world *w) { return protood_scorer_save(w->scorer, w->path); }
static protood_status run_scorer_load(world *w) { return protood_scorer_load((protood_scorer **)&w->out, w->path); }

static protood_status run_scorer_from_buffer(world *w)
{
    return protood_scorer_from_buffer((protood_scorer **)&w->out, w->scorer_bytes, w->scorer_size);
}

static protood_status run_scorer_to_buffer(world *w)
{
    unsigned char *buf = malloc(w->scorer_size);
    size_t size;
    protood_status st = protood_scorer_to_buffer(w->scorer, buf, w->scorer_size, &size);
    ck_assert(st != PROTOOD_OK || (size == w->scorer_size && memcmp(buf, w->scorer_bytes, size) == 0));
    free(buf);
    return st;
}

static protood_status run_npy_read(world *w)
{
    float back[N * D];
    ck_assert_int_eq(protood_npy_write_f32(w->path, N, D, x), PROTOOD_OK);
    return protood_npy_read_f32(w->path, N, D, back);
}

static protood_status run_npy_write(world *w) { return protood_npy_write_f32(w->path, N, D, x); }

static protood_status run_metrics(world *w)
{
    (void)w;
    double auroc, aupr, fpr;
    protood_status st = protood_auroc(N / 2, x, N / 2, x + N / 2, &auroc);
    if (st == PROTOOD_OK)
        st = protood_aupr(N / 2, x, N / 2, x + N / 2, PROTOOD_POSITIVE_OUT, &aupr);
    if (st == PROTOOD_OK)
        st = protood_fpr_at_tpr(N / 2, x, N / 2, x + N / 2, 0.95, PROTOOD_FPR_ROC, &fpr);
    return st;
}

#define KNN PROTOOD_SCORER_KNN
#define MAHA PROTOOD_SCORER_MAHALANOBIS
#define SSD PROTOOD_SCORER_SSD
#define PROTO PROTOOD_SCORER_PROTOTYPE

static const fault_case cases[] = {
    {.name = "bank_create", .run = run_bank_create, .makes = 1},
    {.name = "bank_clone", .with_bank = 1, .run = run_bank_clone, .makes = 1},
    {.name = "init_from_features (class means)", .with_bank = 2, .run = run_init_means},
    {.name = "init_from_features (k-means++)", .with_bank = 1, .run = run_init_kmeans},
    {.name = "palm_step", .with_bank = 1, .run = run_palm_step},
    {.name = "palm_step with a reducer", .with_bank = 1, .bank_reducer = 1, .run = run_palm_step},
    {.name = "cider_step", .with_bank = 2, .run = run_cider_step},
    {.name = "cider_step with a reducer", .with_bank = 2, .bank_reducer = 1, .run = run_cider_step},
    {.name = "palm_assign", .with_bank = 1, .run = run_palm_assign},
    {.name = "sinkhorn", .run = run_sinkhorn},
    {.name = "bank_save", .with_bank = 1, .with_file = 1, .run = run_bank_save},
    {.name = "bank_load", .with_bank = 1, .with_file = 1, .run = run_bank_load, .makes = 1},
    {.name = "bank_from_buffer", .with_bank = 1, .run = run_bank_from_buffer, .makes = 1},
    {.name = "scorer_create", .run = run_scorer_create, .makes = 2},
    {.name = "fit knn", .scorer_kind = KNN, .run = run_refit},
    {.name = "fit mahalanobis", .scorer_kind = MAHA, .run = run_refit},
    {.name = "fit ssd", .scorer_kind = SSD, .run = run_refit},
    {.name = "fit prototype", .scorer_kind = PROTO, .run = run_refit},
    {.name = "fit_bank prototype", .with_bank = 1, .scorer_kind = PROTO, .run = run_fit_bank},
    {.name = "fit_stream knn", .scorer_kind = KNN, .run = run_fit_stream},
    {.name = "fit_stream mahalanobis", .scorer_kind = MAHA, .run = run_fit_stream},
    {.name = "fit knn with a reducer", .scorer_kind = KNN, .scorer_reducer = 1, .run = run_refit},
    {.name = "fit mahalanobis with a reducer", .scorer_kind = MAHA, .scorer_reducer = 1, .run = run_refit},
    {.name = "fit ssd with a reducer", .scorer_kind = SSD, .scorer_reducer = 1, .run = run_refit},
    {.name = "score knn", .scorer_kind = KNN, .run = run_score},
    {.name = "score knn with a reducer", .scorer_kind = KNN, .scorer_reducer = 1, .run = run_score},
    {.name = "score mahalanobis", .scorer_kind = MAHA, .run = run_score},
    {.name = "score_stream ssd", .scorer_kind = SSD, .run = run_score_stream},
    {.name = "score_stream prototype", .scorer_kind = PROTO, .run = run_score_stream},
    {.name = "scorer_save knn", .scorer_kind = KNN, .with_file = 2, .run = run_scorer_save},
    {.name = "scorer_save mahalanobis", .scorer_kind = MAHA, .with_file = 2, .run = run_scorer_save},
    {.name = "scorer_load knn", .scorer_kind = KNN, .with_file = 2, .run = run_scorer_load, .makes = 2},
    {.name = "scorer_load mahalanobis", .scorer_kind = MAHA, .with_file = 2, .run = run_scorer_load, .makes = 2},
    {.name = "scorer_load ssd", .scorer_kind = SSD, .with_file = 2, .run = run_scorer_load, .makes = 2},
    {.name = "scorer_load prototype", .scorer_kind = PROTO, .with_file = 2, .run = run_scorer_load, .makes = 2},
    {.name = "scorer_to_buffer knn", .scorer_kind = KNN, .run = run_scorer_to_buffer},
    {.name = "scorer_to_buffer ssd", .scorer_kind = SSD, .run = run_scorer_to_buffer},
    {.name = "scorer_from_buffer knn", .scorer_kind = KNN, .run = run_scorer_from_buffer, .makes = 2},
    {.name = "scorer_from_buffer mahalanobis", .scorer_kind = MAHA, .run = run_scorer_from_buffer, .makes = 2},
    {.name = "metrics", .run = run_metrics},
};

START_TEST(every_allocation_fails_cleanly)
{
    make_data();
    check_every_allocation(&cases[_i]);
}
END_TEST

/* .npy files: reading allocates the header and data buffers; writing the temporary name. */
START_TEST(npy_every_allocation)
{
    make_data();
    static const fault_case rd = {.name = "npy_read_f32", .run = run_npy_read};
    static const fault_case wr = {.name = "npy_write_f32", .run = run_npy_write};
    const fault_case *both[] = {&rd, &wr};
    for (int i = 0; i < 2; i++) {
        long failures = 0;
        for (long nth = 1;; nth++) {
            char *dir = tu_mkdtemp(), *path = tu_path(dir, "saved");
            float prev[D] = {1, 2, 3, 4, 5, 6};
            ck_assert_int_eq(protood_npy_write_f32(path, 1, D, prev), PROTOOD_OK);
            size_t size;
            unsigned char *before = tu_read_bytes(path, &size);
            world w = {.out = SENTINEL, .dir = dir, .path = path, .file_bytes = before, .file_size = size};
            protood_status st;
            if (both[i] == &rd) { /* the read follows a write of new content: fail only the read */
                float back[N * D];
                ck_assert_int_eq(protood_npy_write_f32(path, N, D, x), PROTOOD_OK);
                free(before);
                w.file_bytes = tu_read_bytes(path, &w.file_size);
                pood_alloc_fail_nth(nth);
                st = protood_npy_read_f32(path, N, D, back);
            } else {
                pood_alloc_fail_nth(nth);
                st = run_npy_write(&w);
            }
            int fired = pood_alloc_fault_fired();
            pood_alloc_fail_nth(0);
            if (fired) {
                ck_assert_msg(st == PROTOOD_E_NOMEM, "%s: allocation %ld: %d", both[i]->name, nth, st);
                assert_unchanged(&w, both[i]->name);
                failures++;
            } else {
                ck_assert_int_eq(st, PROTOOD_OK);
            }
            free(w.file_bytes);
            tu_rmtree(dir);
            free(dir);
            free(path);
            if (!fired)
                break;
        }
        ck_assert_int_gt(failures, 0);
    }
}
END_TEST

/* ---- full disk, unwritable directory -------------------------------------------------------- */

typedef protood_status (*save_fn)(world *w);

/* Run `save` in a child process under `limit` (RLIMIT_FSIZE bytes, writes beyond it fail with
 * EFBIG as on a full disk) or, with limit < 0, as an unprivileged user in a read-only directory.
 * Returns the child's status code, or a value < -100 if it died. */
static int save_in_child(world *w, save_fn save, long limit)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (limit >= 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
                _exit(200);
        } else if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
            _exit(201); /* root ignores permissions: drop to nobody for this child */
        }
        protood_status st = save(w);
        /* the message must name the path */
        if (st != PROTOOD_OK && strstr(protood_last_error(), w->path) == NULL)
            _exit(202);
        _exit(st == PROTOOD_OK ? 0 : -st);
    }
    int wst;
    ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
    if (!WIFEXITED(wst))
        return -1000;
    int code = WEXITSTATUS(wst);
    ck_assert_msg(code < 200, "child failed to set up or left an unnamed path in the message (%d)", code);
    return -code;
}

static const fault_case file_cases[] = {
    {.name = "bank_save", .with_bank = 1, .with_file = 1, .run = run_bank_save},
    {.name = "scorer_save", .scorer_kind = KNN, .with_file = 2, .run = run_scorer_save},
    {.name = "npy_write", .with_bank = 1, .with_file = 1, .run = run_npy_write},
};

START_TEST(full_disk_keeps_previous_file)
{
    make_data();
    const fault_case *c = &file_cases[_i];
    world *w = setup(c);
    /* Something different from what the file holds, so that a partial write would show. */
    if (w->bank)
        ck_assert_int_eq(protood_bank_init_from_features(w->bank, N, x, y, 9), PROTOOD_OK);
    if (w->scorer)
        ck_assert_int_eq(protood_scorer_fit(w->scorer, N, x, y, NC), PROTOOD_OK);
    for (long limit = 0; limit < (long)w->file_size; limit += 1 + limit / 3) {
        int st = save_in_child(w, c->run, limit);
        ck_assert_msg(st == PROTOOD_E_IO, "%s with %ld bytes of space: status %d", c->name, limit, st);
        assert_unchanged(&(world){.out = SENTINEL, .dir = w->dir, .path = w->path, .file_bytes = w->file_bytes,
                                  .file_size = w->file_size},
                         c->name);
    }
    /* Enough room: the save goes through and replaces the file. */
    ck_assert_int_eq(save_in_child(w, c->run, 1L << 30), PROTOOD_OK);
    size_t size;
    unsigned char *now = tu_read_bytes(w->path, &size);
    ck_assert(size != w->file_size || memcmp(now, w->file_bytes, size) != 0);
    free(now);
    teardown(w);
}
END_TEST

START_TEST(unwritable_directory_keeps_previous_file)
{
    make_data();
    const fault_case *c = &file_cases[_i];
    world *w = setup(c);
    ck_assert_int_eq(chmod(w->dir, 0555), 0);
    int st = save_in_child(w, c->run, -1);
    ck_assert_int_eq(chmod(w->dir, 0700), 0);
    ck_assert_msg(st == PROTOOD_E_IO, "%s into a read-only directory: status %d", c->name, st);
    assert_unchanged(w, c->name);
    teardown(w);
}
END_TEST

/* A path through a regular file (ENOTDIR) or into a missing directory: E_IO naming the path. */
START_TEST(impossible_paths)
{
    make_data();
    world *w = setup(&file_cases[0]);
    char *bad[2] = {tu_path(w->path, "x"), tu_path(w->dir, "missing/x")};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(protood_bank_save(w->bank, bad[i]), PROTOOD_E_IO);
        ck_assert(strstr(protood_last_error(), bad[i]) != NULL);
        free(bad[i]);
    }
    assert_unchanged(w, "bank_save to an impossible path");
    teardown(w);
}
END_TEST

/* ---- a reducer failing at each of its calls ------------------------------------------------ */

typedef struct failing_reducer {
    int calls, fail_at;
} failing_reducer;

static int32_t reduce_until(void *user, double *buf, int64_t count)
{
    (void)buf;
    (void)count;
    failing_reducer *r = user;
    return ++r->calls == r->fail_at ? 7 : 0;
}

/* The step's n-th exchange fails, for every n: E_CALLBACK, bank unchanged. Then a KNN and a
 * Mahalanobis fit and score likewise. */
START_TEST(reducer_failure_at_every_call)
{
    make_data();
    static const fault_case step_cases[] = {
        {.name = "palm_step", .with_bank = 1, .run = run_palm_step},
        {.name = "cider_step", .with_bank = 2, .run = run_cider_step},
        {.name = "fit knn", .scorer_kind = KNN, .run = run_refit},
        {.name = "fit mahalanobis", .scorer_kind = MAHA, .run = run_refit},
        {.name = "fit ssd", .scorer_kind = SSD, .run = run_refit},
    };
    for (size_t i = 0; i < sizeof step_cases / sizeof *step_cases; i++) {
        const fault_case *c = &step_cases[i];
        int failures = 0;
        for (int at = 1;; at++) {
            world *w = setup(c);
            failing_reducer r = {0, at};
            if (w->bank)
                ck_assert_int_eq(protood_bank_set_reducer(w->bank, reduce_until, &r, 0, 1), PROTOOD_OK);
            else
                ck_assert_int_eq(protood_scorer_set_reducer(w->scorer, reduce_until, &r, 0, 1), PROTOOD_OK);
            /* a fresh KNN sharded fit replaces the model: compare scores under the same reducer */
            if (w->scorer)
                ck_assert_int_eq(protood_scorer_score(w->scorer, M, q, w->scores), PROTOOD_OK);
            r.calls = 0;
            protood_status st = c->run(w);
            if (r.calls < at) {
                ck_assert_msg(st == PROTOOD_OK, "%s: %s", c->name, protood_last_error());
                teardown(w);
                break;
            }
            ck_assert_msg(st == PROTOOD_E_CALLBACK, "%s, reducer call %d failing: %d", c->name, at, st);
            r.fail_at = 0;
            assert_unchanged(w, c->name);
            teardown(w);
            failures++;
        }
        ck_assert_msg(failures > 0, "%s never called the reducer", c->name);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, every_allocation_fails_cleanly, 0, (int)(sizeof cases / sizeof *cases));
    tcase_add_test(tc, npy_every_allocation);
    tcase_add_loop_test(tc, full_disk_keeps_previous_file, 0, 3);
    tcase_add_loop_test(tc, unwritable_directory_keeps_previous_file, 0, 3);
    tcase_add_test(tc, impossible_paths);
    tcase_add_test(tc, reducer_failure_at_every_call);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
