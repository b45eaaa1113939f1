/* Internal: atomic file replacement shared by every writer (.npy, bank, scorer files). */
#ifndef PROTOOD_LIB_FILEIO_H
#define PROTOOD_LIB_FILEIO_H

#include <stddef.h>

#include "protood.h"

/* One piece of the file: written in order. */
typedef struct pood_chunk {
    const void *data;
    size_t size;
} pood_chunk;

/* Write the chunks to a new temporary file next to `path`, flush and fsync it, then rename it
 * over `path` (and fsync the directory). A reader never sees a half-written file under `path`;
 * on any failure the temporary file is removed, an existing `path` is left untouched and the
 * error (E_IO, naming `func` and the path) is recorded. The new file gets mode 0666 & ~umask. */
protood_status pood_write_file_atomic(const char *func, const char *path, const pood_chunk *chunks,
                                      size_t n_chunks);

#endif
