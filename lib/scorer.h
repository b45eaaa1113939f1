/* Internal: the scorer handle, its fitted model, and the per-kind pieces behind protood_scorer_*.
 *
 * scorer.c owns the handle, parameters, validation, streaming, persistence and the parallel tile
 * driver; scorer_knn.c, scorer_maha.c (Mahalanobis and SSD) and scorer_proto.c each provide a
 * fit session (rows in, model out) and a tile function (a block of queries in, scores out). */
#ifndef PROTOOD_LIB_SCORER_H
#define PROTOOD_LIB_SCORER_H

#include <stddef.h>
#include <stdint.h>

#include "protood.h"
#include "reducer.h"

#define POOD_SCORER_N_KEYS 2          /* PROTOOD_SCORER_K, PROTOOD_SCORER_NORMALIZE */
#define POOD_SCORER_DEFAULT_K 50
/* Queries per tile: one tile's GEMM output and selection state stay in L2 (a few MB). */
#define POOD_SCORER_TILE_ROWS 256
/* KNN training rows per tile: 256 x 2048 floats = 2 MB of distances per thread. */
#define POOD_SCORER_TILE_COLS 2048
/* From this dim on, tiles of 512 x 1024 (same 2 MB): every tile repacks its training rows for the
 * GEMM, and with long rows that repacking is worth amortising over more queries (measured 6%
 * faster at D = 512, no gain at D = 128). */
#define POOD_SCORER_WIDE_DIM 384

/* What fit leaves behind. Immutable once built, so a const scorer may be scored from many
 * threads; a refit builds a new model and swaps it in only on success. */
typedef struct pood_model {
    /* KNN: the training rows; PROTOTYPE: the prototypes. Normalised when the scorer normalises. */
    int64_t n_rows;
    float *rows;      /* n_rows x dim */
    float *row_sq;    /* KNN: squared norm of each row (ranking uses |x|^2 - 2 q.x) */
    double row_sq_max, row_norm_max; /* KNN: bound the ranking's rounding error */

    /* MAHALANOBIS / SSD: a Gaussian with pseudo-inverse precision S+ = W diag(signs) W^T, so
     * that -(q - mu_c)^T S+ (q - mu_c) = -sum_t signs[t] * (p_t - centres[c][t])^2 with
     * p = W^T (q - origin). signs are +1 except for negative eigenvalues pinvh keeps. */
    int64_t n_centres;    /* classes (MAHALANOBIS) or 1 (SSD) */
    int64_t rank;         /* eigenvalues kept by the pinvh cutoff */
    double *origin;       /* dim: subtracted before projecting, so that p stays small */
    float *proj;          /* dim x rank, row-major (W) */
    double *signs;        /* rank */
    double *centres;      /* n_centres x rank: W^T (mu_c - origin) */
    float *centres_f;     /* n_centres x rank: centres * signs, for the candidate GEMM */
    double *centres_sq;   /* n_centres: sum_t signs[t] * centres[c][t]^2 */
    double centres_norm_max; /* max_c ||centres[c]||, for the candidate margin */
} pood_model;

struct protood_scorer {
    int32_t kind;
    int64_t dim;
    int64_t k;            /* PROTOOD_SCORER_K */
    int32_t normalize;    /* PROTOOD_SCORER_NORMALIZE */
    int64_t tile_rows;    /* queries per tile; POOD_SCORER_TILE_ROWS unless a test changed it */
    int64_t tile_cols;    /* KNN training rows / prototypes per tile */
    pood_model *model;    /* NULL until fitted */
    /* Several processes (scorer_dist.c): the caller's allreduce, and for a KNN model fitted with
     * it, the number of ranks whose shards make up the training set (0: the model is whole). */
    pood_reducer reducer;
    int32_t shards;
};

/* protood_scorer_fit / _score with a reducer attached (scorer_dist.c); arguments not yet checked. */
protood_status pood_scorer_fit_dist(const char *func, protood_scorer *s, int64_t n, const float *x,
                                    const int32_t *labels, int64_t n_classes);
protood_status pood_scorer_score_dist(const char *func, const protood_scorer *s, int64_t m, const float *q,
                                      float *out);
/* E_STATE if `s` holds a KNN shard and cannot score alone. */
protood_status pood_scorer_check_whole(const char *func, const protood_scorer *s);

void pood_model_free(pood_model *m);
/* Recompute the derived arrays (row_sq, centres_f, centres_sq, centres_norm_max) from the stored
 * ones, as fit leaves them; load calls it too, so a loaded model scores bit for bit alike. */
protood_status pood_model_derive(const char *func, int32_t kind, int64_t dim, pood_model *m);

/* Change the tile sizes of a scorer (tests: scores must not depend on them). >= 1 each. */
void pood_scorer_set_tiles(protood_scorer *scorer, int64_t tile_rows, int64_t tile_cols);

/* ---- Fit sessions: rows arrive in order, in pieces of any size, already validated ---------- */

typedef struct pood_fit pood_fit;
/* n rows will follow (n >= 1 and, for KNN, n >= k: checked by the caller). n_classes is used by
 * MAHALANOBIS only. */
protood_status pood_fit_begin(const char *func, const protood_scorer *s, int64_t n, int64_t n_classes,
                              pood_fit **out);
void pood_fit_add(pood_fit *f, int64_t count, const float *rows, const int32_t *labels);
/* Build the model from everything added; on failure nothing is returned. Frees nothing. */
protood_status pood_fit_finish(const char *func, pood_fit *f, pood_model **out);
void pood_fit_free(pood_fit *f);

/* MAHALANOBIS and SSD accumulate moments (scorer_maha.c); KNN and PROTOTYPE keep the rows. */
typedef struct pood_gauss_fit pood_gauss_fit;
protood_status pood_gauss_fit_begin(const char *func, int32_t kind, int64_t dim, int32_t normalize,
                                    int64_t n_classes, pood_gauss_fit **out);
void pood_gauss_fit_add(pood_gauss_fit *g, int64_t count, const float *rows, const int32_t *labels);
protood_status pood_gauss_fit_finish(const char *func, pood_gauss_fit *g, pood_model **out);
void pood_gauss_fit_free(pood_gauss_fit *g);
/* Distributed fits (scorer_dist.c): the shift row pood_gauss_fit_add would take from x (dim
 * doubles); fixing the shifts of every class (n_classes x dim) before any row is added; and the
 * moments (row and class counts, shifted sums, scatter) as one array of _count doubles to be
 * summed over ranks, packed (after flushing) and unpacked in place. */
void pood_gauss_shift_row(int32_t normalize, int64_t dim, const float *x, double *out);
void pood_gauss_fit_preset_shift(pood_gauss_fit *g, const double *shift);
int64_t pood_gauss_fit_moments_count(const pood_gauss_fit *g);
void pood_gauss_fit_moments_pack(pood_gauss_fit *g, double *buf);
void pood_gauss_fit_moments_unpack(pood_gauss_fit *g, const double *buf);

/* ---- Scoring: the driver splits queries into tiles of tile_rows and runs each tile -------- */

/* Scratch carving: pieces laid out one after the other, each on a 64-byte boundary, with size
 * overflow recorded instead of wrapping. The size functions and the tile functions run the same
 * sequence of pood_layout_add calls, so they agree on every offset. */
typedef struct pood_layout {
    size_t size;
    int overflow;
} pood_layout;

static inline size_t pood_layout_add(pood_layout *l, int64_t a, int64_t b, size_t elem)
{
    size_t off = (l->size + 63) & ~(size_t)63, ab, bytes;
    if (l->overflow || off < l->size || a < 0 || b < 0 || __builtin_mul_overflow((size_t)a, (size_t)b, &ab) ||
        __builtin_mul_overflow(ab, elem, &bytes) || __builtin_add_overflow(off, bytes, &l->size)) {
        l->overflow = 1;
        return 0;
    }
    return off;
}

/* KNN selection state per query, to bound a tile's memory for large k. */
size_t pood_knn_bytes_per_query(int64_t k);
/* Bytes of scratch one thread needs for one tile of `tile_rows` queries; 0 on size overflow. */
size_t pood_knn_scratch(const protood_scorer *s, int64_t tile_rows);
size_t pood_gauss_scratch(const protood_scorer *s, int64_t tile_rows);
size_t pood_proto_scratch(const protood_scorer *s, int64_t tile_rows);
/* Score `rows` (<= tile_rows) validated queries into out. `scratch` holds pood_*_scratch bytes,
 * aligned for double. Never fails. */
void pood_knn_tile(const protood_scorer *s, int64_t rows, const float *q, float *out, void *scratch);
void pood_gauss_tile(const protood_scorer *s, int64_t rows, const float *q, float *out, void *scratch);
void pood_proto_tile(const protood_scorer *s, int64_t rows, const float *q, float *out, void *scratch);

#endif
