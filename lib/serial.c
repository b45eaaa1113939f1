/* Little-endian serialisation independent of the host's byte order, and CRC-32 through zlib. */
#include "serial.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "alloc.h"

static int reserve(pood_writer *w, size_t n)
{
    if (w->failed)
        return 0;
    if (n > SIZE_MAX - w->size) {
        w->failed = 1;
        return 0;
    }
    if (w->size + n <= w->cap)
        return 1;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->size + n)
        cap = cap > SIZE_MAX / 2 ? w->size + n : cap * 2;
    unsigned char *b = pood_realloc(w->buf, cap);
    if (!b) {
        w->failed = 1;
        return 0;
    }
    w->buf = b;
    w->cap = cap;
    return 1;
}

void pood_put_bytes(pood_writer *w, const void *data, size_t n)
{
    if (n && reserve(w, n)) {
        memcpy(w->buf + w->size, data, n);
        w->size += n;
    }
}

static void put_le(pood_writer *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    pood_put_bytes(w, b, (size_t)bytes);
}

void pood_put_u32(pood_writer *w, uint32_t v) { put_le(w, v, 4); }
void pood_put_u64(pood_writer *w, uint64_t v) { put_le(w, v, 8); }
void pood_put_i64(pood_writer *w, int64_t v) { put_le(w, (uint64_t)v, 8); }

void pood_put_f64(pood_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_le(w, bits, 8);
}

void pood_put_f32s(pood_writer *w, const float *v, size_t n)
{
    if (!reserve(w, n * 4))
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        put_le(w, bits, 4);
    }
}

void pood_put_f64s(pood_writer *w, const double *v, size_t n)
{
    if (!reserve(w, n * 8))
        return;
    for (size_t i = 0; i < n; i++)
        pood_put_f64(w, v[i]);
}

void pood_writer_free(pood_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

size_t pood_reader_left(const pood_reader *r)
{
    return r->overrun ? 0 : r->size - r->pos;
}

static const unsigned char *take(pood_reader *r, size_t n)
{
    if (r->overrun || n > r->size - r->pos) {
        r->overrun = 1;
        return NULL;
    }
    const unsigned char *p = r->data + r->pos;
    r->pos += n;
    return p;
}

void pood_get_bytes(pood_reader *r, void *out, size_t n)
{
    const unsigned char *p = take(r, n);
    if (p && n)
        memcpy(out, p, n);
}

static uint64_t get_le(pood_reader *r, int bytes)
{
    const unsigned char *p = take(r, (size_t)bytes);
    uint64_t v = 0;
    if (p)
        for (int i = 0; i < bytes; i++)
            v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint32_t pood_get_u32(pood_reader *r) { return (uint32_t)get_le(r, 4); }
uint64_t pood_get_u64(pood_reader *r) { return get_le(r, 8); }
int64_t pood_get_i64(pood_reader *r) { return (int64_t)get_le(r, 8); }

double pood_get_f64(pood_reader *r)
{
    uint64_t bits = get_le(r, 8);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}

void pood_get_f32s(pood_reader *r, float *out, size_t n)
{
    if (n > SIZE_MAX / 4 || n * 4 > pood_reader_left(r)) {
        r->overrun = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)get_le(r, 4);
        memcpy(&out[i], &bits, 4);
    }
}

void pood_get_f64s(pood_reader *r, double *out, size_t n)
{
    if (n > SIZE_MAX / 8 || n * 8 > pood_reader_left(r)) {
        r->overrun = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = pood_get_f64(r);
}

uint32_t pood_crc32(const void *data, size_t n)
{
    const unsigned char *p = data;
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > 0x40000000u ? 0x40000000u : (uInt)n;
        crc = crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)crc;
}
