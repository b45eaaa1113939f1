/* Exact KNN score (Sun et al. 2022): -||q - x_(k)||^2, the negative squared distance to the k-th
 * nearest training row.
 *
 * One tile of queries at a time: the training rows are swept in tiles of tile_cols, each sweep a
 * single cblas_sgemm into a distance buffer that fits in L2 and is reused, followed by a scan that
 * keeps, per query, the k smallest values in a bounded max-heap. The m x n distance matrix never
 * exists.
 *
 * "Computed carefully": the GEMM only ranks. It ranks by v = |x|^2 - 2 q.x in float32 (|q|^2 is the
 * same for every candidate of a query), whose rounding error has the a-priori bound eps below;
 * |2 - 2 q.x| style cancellation and the GEMM's blocking (its bits change with the tile shape) are
 * then kept out of the result like this:
 *   - rows ranked within 2 eps above the k-th value are kept too (a short "band" list per query);
 *   - at the end, heap rows more than 2 eps below the k-th value are certainly among the k nearest
 *     and nearer than the k-th (their exact distance is below root - eps, the k-th is at least
 *     that); rows outside heap and band are certainly farther. The remaining heap rows and the band
 *     rows are the only ones that can be the k-th, so their distances are recomputed in double
 *     from the stored rows and the right order statistic taken.
 * The score is therefore the k-th smallest of the double-precision distances, bit for bit whatever
 * the tiles, the thread count or the BLAS. If more than POOD_KNN_BAND rows crowd the boundary
 * (many near-duplicates), that query falls back to an exact double sweep over all rows. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bank.h"
#include "scorer.h"

/* Band rows kept per query: near-ties at rank k are rare, so a few slots suffice; a query that
 * needs more takes the exact fallback. */
#define POOD_KNN_BAND 32

#if defined(_OPENMP)
#define SIMD_OR_ANY _Pragma("omp simd reduction(|:any)")
#else
#define SIMD_OR_ANY
#endif

typedef struct knn_layout {
    size_t queries, dots, heap_val, heap_idx, fill, band_val, band_idx, band_n, width, cand;
    pood_layout l;
} knn_layout;

static knn_layout layout(const protood_scorer *s, int64_t tile_rows)
{
    knn_layout k = {0};
    int64_t cols = s->tile_cols < s->model->n_rows ? s->tile_cols : s->model->n_rows;
    k.queries = pood_layout_add(&k.l, tile_rows, s->dim, sizeof(float));
    k.dots = pood_layout_add(&k.l, tile_rows, cols, sizeof(float));
    k.heap_val = pood_layout_add(&k.l, tile_rows, s->k, sizeof(float));
    k.heap_idx = pood_layout_add(&k.l, tile_rows, s->k, sizeof(int64_t));
    k.fill = pood_layout_add(&k.l, tile_rows, 1, sizeof(int64_t));
    k.band_val = pood_layout_add(&k.l, tile_rows, POOD_KNN_BAND, sizeof(float));
    k.band_idx = pood_layout_add(&k.l, tile_rows, POOD_KNN_BAND, sizeof(int64_t));
    k.band_n = pood_layout_add(&k.l, tile_rows, 1, sizeof(int64_t));
    k.width = pood_layout_add(&k.l, tile_rows, 1, sizeof(float));
    k.cand = pood_layout_add(&k.l, s->k + POOD_KNN_BAND, 1, sizeof(double));
    return k;
}

size_t pood_knn_scratch(const protood_scorer *s, int64_t tile_rows)
{
    knn_layout k = layout(s, tile_rows);
    return k.l.overflow ? 0 : k.l.size;
}

/* Max-heap of the k smallest values seen so far: the root is the current k-th smallest. */
static void heap_push(float *val, int64_t *idx, int64_t size, float v, int64_t id)
{
    int64_t i = size;
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (val[parent] >= v)
            break;
        val[i] = val[parent];
        idx[i] = idx[parent];
        i = parent;
    }
    val[i] = v;
    idx[i] = id;
}

static void heap_replace_root(float *val, int64_t *idx, int64_t size, float v, int64_t id)
{
    int64_t i = 0;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= size)
            break;
        if (child + 1 < size && val[child + 1] > val[child])
            child++;
        if (val[child] <= v)
            break;
        val[i] = val[child];
        idx[i] = idx[child];
        i = child;
    }
    val[i] = v;
    idx[i] = id;
}

/* Per-query selection state, pointing into the tile's scratch. */
typedef struct query_sel {
    float *val;
    int64_t *idx;
    int64_t fill;
    float *band_val;
    int64_t *band_idx;
    int64_t band_n;   /* -1: overflowed, the query takes the exact fallback */
    float width;      /* 2 eps */
} query_sel;

/* Keep a row that lost to the heap but is within `width` of its root. */
static void band_keep(query_sel *q, float v, int64_t id)
{
    if (q->band_n < 0)
        return;
    if (q->band_n == POOD_KNN_BAND) { /* full: drop rows the (lower) root has left behind */
        float limit = q->val[0] + q->width;
        int64_t kept = 0;
        for (int64_t b = 0; b < q->band_n; b++)
            if (q->band_val[b] < limit) {
                q->band_val[kept] = q->band_val[b];
                q->band_idx[kept++] = q->band_idx[b];
            }
        q->band_n = kept;
        if (kept == POOD_KNN_BAND) {
            q->band_n = -1;
            return;
        }
    }
    q->band_val[q->band_n] = v;
    q->band_idx[q->band_n++] = id;
}

static void offer(query_sel *q, int64_t k, float v, int64_t id)
{
    if (v < q->val[0]) {
        float old_v = q->val[0];
        int64_t old_id = q->idx[0];
        heap_replace_root(q->val, q->idx, k, v, id);
        if (old_v < q->val[0] + q->width)
            band_keep(q, old_v, old_id);
    } else {
        band_keep(q, v, id);
    }
}

/* Offer one query's row of dot products against training rows [base, base + cols). */
static void select_row(query_sel *q, const float *dot, const float *sq, int64_t cols, int64_t base, int64_t k)
{
    int64_t j = 0;
    for (; j < cols && q->fill < k; j++, q->fill++)
        heap_push(q->val, q->idx, q->fill, sq[j] - 2.0f * dot[j], base + j);
    if (j == cols)
        return;
    float limit = q->val[0] + q->width;
    /* Once the heap is full almost every row loses by more than the band: test blocks of 16
     * without branches (vectorised) and look closer only at a block holding a candidate. */
    for (; j + 16 <= cols; j += 16) {
        int any = 0;
        SIMD_OR_ANY
        for (int t = 0; t < 16; t++)
            any |= sq[j + t] - 2.0f * dot[j + t] < limit;
        if (!any)
            continue;
        for (int t = 0; t < 16; t++) {
            float v = sq[j + t] - 2.0f * dot[j + t];
            if (v < limit) {
                offer(q, k, v, base + j + t);
                limit = q->val[0] + q->width;
            }
        }
    }
    for (; j < cols; j++) {
        float v = sq[j] - 2.0f * dot[j];
        if (v < limit) {
            offer(q, k, v, base + j);
            limit = q->val[0] + q->width;
        }
    }
}

static double distance(const float *a, const float *b, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The k-th smallest double distance from `query` to every row: the fallback for crowded
 * boundaries, with a max-heap of k doubles in `heap`. */
static double exact_kth(const pood_model *m, const float *query, int64_t d, int64_t k, double *heap)
{
    for (int64_t r = 0; r < m->n_rows; r++) {
        double v = distance(query, m->rows + r * d, d);
        int64_t i;
        if (r < k) {
            for (i = r; i > 0 && heap[(i - 1) / 2] < v; i = (i - 1) / 2)
                heap[i] = heap[(i - 1) / 2];
        } else if (v < heap[0]) {
            for (i = 0;;) {
                int64_t c = 2 * i + 1;
                if (c >= k)
                    break;
                if (c + 1 < k && heap[c + 1] > heap[c])
                    c++;
                if (heap[c] <= v)
                    break;
                heap[i] = heap[c];
                i = c;
            }
        } else {
            continue;
        }
        heap[i] = v;
    }
    return heap[0];
}

void pood_knn_tile(const protood_scorer *s, int64_t rows, const float *q, float *out, void *scratch)
{
    const pood_model *m = s->model;
    const int64_t d = s->dim, n = m->n_rows, k = s->k;
    const int64_t tile_cols = s->tile_cols < n ? s->tile_cols : n;
    knn_layout lay = layout(s, rows);
    char *base = scratch;
    float *qn = (float *)(base + lay.queries);
    float *dots = (float *)(base + lay.dots);
    float *heap_val = (float *)(base + lay.heap_val);
    int64_t *heap_idx = (int64_t *)(base + lay.heap_idx);
    int64_t *fill = (int64_t *)(base + lay.fill);
    float *band_val = (float *)(base + lay.band_val);
    int64_t *band_idx = (int64_t *)(base + lay.band_idx);
    int64_t *band_n = (int64_t *)(base + lay.band_n);
    float *width = (float *)(base + lay.width);
    double *cand = (double *)(base + lay.cand);

    if (s->normalize)
        pood_normalize_rows(rows, d, q, qn);
    else
        memcpy(qn, q, (size_t)rows * (size_t)d * sizeof(float));
    /* |v - exact| <= eps = 2 gamma_{d+2} (|x|^2 + 2 |q| |x|) for v = fl(|x|^2) - 2 fl(q.x), any
     * summation order (gamma_n = n u / (1 - n u), u = 2^-24). The band is 2 eps, doubled again
     * for safety: a wider band costs only a few more exact distances. */
    const double u = FLT_EPSILON / 2, nu = (double)(d + 2) * u, gamma = nu / (1.0 - nu);
    for (int64_t i = 0; i < rows; i++) {
        double qq = 0.0;
        for (int64_t j = 0; j < d; j++)
            qq += (double)qn[i * d + j] * qn[i * d + j];
        double eps = 2.0 * gamma * (m->row_sq_max + 2.0 * sqrt(qq) * m->row_norm_max);
        width[i] = (float)(4.0 * eps) + FLT_MIN;
        fill[i] = 0;
        band_n[i] = 0;
    }

    for (int64_t c0 = 0; c0 < n; c0 += tile_cols) {
        int64_t cols = n - c0 < tile_cols ? n - c0 : tile_cols;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)d, 1.0f, qn, (int)d,
                    m->rows + c0 * d, (int)d, 0.0f, dots, (int)cols);
        for (int64_t i = 0; i < rows; i++) {
            query_sel sel = {heap_val + i * k, heap_idx + i * k, fill[i], band_val + i * POOD_KNN_BAND,
                             band_idx + i * POOD_KNN_BAND, band_n[i], width[i]};
            select_row(&sel, dots + i * cols, m->row_sq + c0, cols, c0, k);
            fill[i] = sel.fill;
            band_n[i] = sel.band_n;
        }
    }

    for (int64_t i = 0; i < rows; i++) {
        const float *query = qn + i * d;
        if (band_n[i] < 0) {
            out[i] = (float)-exact_kth(m, query, d, k, cand);
            continue;
        }
        const float *val = heap_val + i * k;
        const int64_t *idx = heap_idx + i * k;
        const float root = val[0], w = width[i];
        int64_t sure = 0, nc = 0; /* heap rows certainly nearer than the k-th; candidates */
        for (int64_t h = 0; h < k; h++) {
            if (val[h] < root - w)
                sure++;
            else
                cand[nc++] = distance(query, m->rows + idx[h] * d, d);
        }
        for (int64_t b = 0; b < band_n[i]; b++)
            if (band_val[i * POOD_KNN_BAND + b] < root + w)
                cand[nc++] = distance(query, m->rows + band_idx[i * POOD_KNN_BAND + b] * d, d);
        if (nc > 1)
            qsort(cand, (size_t)nc, sizeof *cand, cmp_double);
        out[i] = (float)-cand[k - sure - 1];
    }
}
