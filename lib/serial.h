/* Internal: explicit little-endian serialisation for the library's own file formats (bank,
 * scorer): a growable writer, a bounds-checked reader, and CRC-32. */
#ifndef PROTOOD_LIB_SERIAL_H
#define PROTOOD_LIB_SERIAL_H

#include <stddef.h>
#include <stdint.h>

/* Appends; on allocation failure `failed` is set and later puts do nothing. */
typedef struct pood_writer {
    unsigned char *buf;
    size_t size, cap;
    int failed;
} pood_writer;

void pood_put_bytes(pood_writer *w, const void *data, size_t n);
void pood_put_u32(pood_writer *w, uint32_t v);
void pood_put_u64(pood_writer *w, uint64_t v);
void pood_put_i64(pood_writer *w, int64_t v);
void pood_put_f64(pood_writer *w, double v);
void pood_put_f32s(pood_writer *w, const float *v, size_t n);
void pood_put_f64s(pood_writer *w, const double *v, size_t n);
void pood_writer_free(pood_writer *w);

/* Reads; running past the end sets `overrun`, returns zeros and copies nothing, so a parser can
 * read a whole record and check once. */
typedef struct pood_reader {
    const unsigned char *data;
    size_t size, pos;
    int overrun;
} pood_reader;

void pood_get_bytes(pood_reader *r, void *out, size_t n);
uint32_t pood_get_u32(pood_reader *r);
uint64_t pood_get_u64(pood_reader *r);
int64_t pood_get_i64(pood_reader *r);
double pood_get_f64(pood_reader *r);
/* n values into out (which must hold n); nothing is written on overrun. */
void pood_get_f32s(pood_reader *r, float *out, size_t n);
void pood_get_f64s(pood_reader *r, double *out, size_t n);
/* Bytes left to read. */
size_t pood_reader_left(const pood_reader *r);

/* zlib's CRC-32 over any length. */
uint32_t pood_crc32(const void *data, size_t n);

#endif
