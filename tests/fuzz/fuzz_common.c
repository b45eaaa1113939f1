/* Helpers of the fuzz targets (fuzz_common.h). */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "serial.h"

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: invariant broken: %s\n  ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n  last error: '%s'\n", protood_last_error());
    abort();
}

void fuzz_check_failure(protood_status st, const char *func, const protood_status *allowed)
{
    int known = 0;
    for (const protood_status *a = allowed; *a != PROTOOD_OK; a++)
        known |= st == *a;
    FUZZ_CHECK(known, "%s returned %d (%s), not one of the codes it documents", func, (int)st,
               protood_status_string(st));
    const char *msg = protood_last_error();
    FUZZ_CHECK(msg && strncmp(msg, func, strlen(func)) == 0 && msg[strlen(func)] == ':',
               "%s failed with %d but its message does not name it", func, (int)st);
}

const char *fuzz_file(const void *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("protood-fuzz", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz_file: writing the in-memory file");
        abort();
    }
    return path;
}

static char scratch_dir[256];

static void remove_scratch_dir(void)
{
    rmdir(scratch_dir); /* the targets unlink their files; an abort leaves the directory */
}

const char *fuzz_scratch_path(const char *name)
{
    static char path[512];
    if (!scratch_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch_dir, sizeof scratch_dir, "%s/protood-fuzz-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch_dir)) {
            perror("fuzz_scratch_path: mkdtemp");
            abort();
        }
        atexit(remove_scratch_dir);
    }
    snprintf(path, sizeof path, "%s/%s", scratch_dir, name);
    return path;
}

unsigned char *fuzz_fix_crc(const uint8_t *data, size_t size)
{
    if (size < 4)
        return NULL;
    unsigned char *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    uint32_t crc = pood_crc32(copy, size - 4);
    for (int i = 0; i < 4; i++)
        copy[size - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
    return copy;
}
