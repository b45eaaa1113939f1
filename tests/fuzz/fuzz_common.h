/* Shared by the fuzz targets: libFuzzer's entry point, invariant checks, and the library's
 * file-reading entry points fed from memory. A broken invariant aborts: libFuzzer and the replay
 * driver (replay.c) both report an abort as a finding, with the message printed before it. */
#ifndef PROTOOD_FUZZ_COMMON_H
#define PROTOOD_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "protood.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 4, 5)))
#endif
void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...);

#define FUZZ_CHECK(cond, ...)                                        \
    do {                                                             \
        if (!(cond))                                                 \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);       \
    } while (0)

/* A failed call must report one of the codes its documentation allows (`allowed`, ended by
 * PROTOOD_OK) and leave a message that names `func`. */
void fuzz_check_failure(protood_status st, const char *func, const protood_status *allowed);

/* The path of a regular file holding exactly `size` bytes of `data` (an in-memory file, so that
 * every execution does not touch the disk). Valid until the next call; one file per process. */
const char *fuzz_file(const void *data, size_t size);

/* A path for a file the library writes (its writers replace files atomically, so they need a
 * real directory): `name` in a directory of this process under /dev/shm (memory, so a write's
 * fsync costs nothing), or under $TMPDIR or /tmp without it; removed at exit. */
const char *fuzz_scratch_path(const char *name);

/* A malloc'd copy of a bank or scorer image whose last four bytes are replaced by the CRC-32 of
 * the rest, as the writers put it: lets mutations reach the parsing behind the checksum, which a
 * random change fails almost always. NULL when size < 4. */
unsigned char *fuzz_fix_crc(const uint8_t *data, size_t size);

#endif
