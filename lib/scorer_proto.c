/* Prototype score: the largest cosine similarity of a query to any prototype (SPEC.md §6). One
 * cblas_sgemm per tile of queries and tile of prototypes, then a running row maximum. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "bank.h"
#include "scorer.h"

typedef struct proto_layout {
    size_t queries, sims;
    pood_layout l;
} proto_layout;

static proto_layout layout(const protood_scorer *s, int64_t tile_rows)
{
    proto_layout p = {0};
    int64_t cols = s->tile_cols < s->model->n_rows ? s->tile_cols : s->model->n_rows;
    p.queries = pood_layout_add(&p.l, tile_rows, s->dim, sizeof(float));
    p.sims = pood_layout_add(&p.l, tile_rows, cols, sizeof(float));
    return p;
}

size_t pood_proto_scratch(const protood_scorer *s, int64_t tile_rows)
{
    proto_layout p = layout(s, tile_rows);
    return p.l.overflow ? 0 : p.l.size;
}

void pood_proto_tile(const protood_scorer *s, int64_t rows, const float *q, float *out, void *scratch)
{
    const pood_model *m = s->model;
    const int64_t d = s->dim, n = m->n_rows;
    const int64_t tile_cols = s->tile_cols < n ? s->tile_cols : n;
    proto_layout lay = layout(s, rows);
    float *qn = (float *)((char *)scratch + lay.queries);
    float *sims = (float *)((char *)scratch + lay.sims);

    if (s->normalize)
        pood_unit_rows(rows, d, q, qn);
    else
        memcpy(qn, q, (size_t)rows * (size_t)d * sizeof(float));
    for (int64_t i = 0; i < rows; i++)
        out[i] = -INFINITY;
    for (int64_t c0 = 0; c0 < n; c0 += tile_cols) {
        int64_t cols = n - c0 < tile_cols ? n - c0 : tile_cols;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)d, 1.0f, qn, (int)d,
                    m->rows + c0 * d, (int)d, 0.0f, sims, (int)cols);
        for (int64_t i = 0; i < rows; i++) {
            const float *row = sims + i * cols;
            float best = out[i];
            for (int64_t j = 0; j < cols; j++)
                best = row[j] > best ? row[j] : best;
            out[i] = best;
        }
    }
}
