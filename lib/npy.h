/* Internal: the parsed header of a .npy file, for readers beyond the public npy functions. */
#ifndef PROTOOD_LIB_NPY_H
#define PROTOOD_LIB_NPY_H

#include <stdint.h>
#include <stdio.h>

#include "protood.h"

typedef struct pood_npy_header {
    unsigned major, minor;   /* format version */
    int32_t dtype;           /* PROTOOD_DTYPE_* */
    size_t itemsize;
    int swap;                /* file byte order differs from the host's */
    int fortran_order;
    int ndim;                /* 1 or 2 */
    int64_t rows, cols;      /* 1-D: cols = 1 */
    uint64_t data_offset;    /* where the data start */
    uint64_t data_bytes;     /* rows * cols * itemsize, equal to what the file holds */
} pood_npy_header;

/* Open and validate `path` (magic, version, header, dtype, shape, exact data size); on success the
 * stream is positioned at the first data byte. Errors are recorded under `func`. */
protood_status pood_npy_open(const char *func, const char *path, FILE **out, pood_npy_header *h);

#endif
