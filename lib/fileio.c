/* Atomic file replacement: temporary file + fsync + rename. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "errors.h"

static int write_all(int fd, const void *data, size_t size)
{
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        size -= (size_t)w;
    }
    return 0;
}

/* Durability of the rename itself needs the directory synced; failure here is not fatal
 * (some file systems refuse fsync on directories) because the file data are already safe. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

protood_status pood_write_file_atomic(const char *func, const char *path, const pood_chunk *chunks,
                                      size_t n_chunks)
{
    size_t len = strlen(path);
    char *tmp = pood_malloc(len + 32);
    if (!tmp)
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for a temporary file name");

    /* open(O_EXCL) with a fresh name rather than mkstemp: the kernel then applies the umask,
     * so the result has the permissions any other new file would have. */
    static _Atomic unsigned counter;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        unsigned tag = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^ (counter++ * 40503u);
        snprintf(tmp, len + 32, "%s.tmp-%08x", path, tag);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int err = errno;
        free(tmp);
        return pood_fail(PROTOOD_E_IO, func, "path '%s': cannot create a temporary file: %s", path,
                         strerror(err));
    }

    const char *step = "write";
    int failed = 0;
    for (size_t i = 0; i < n_chunks && !failed; i++)
        failed = chunks[i].size > 0 && write_all(fd, chunks[i].data, chunks[i].size) != 0;
    if (!failed) {
        step = "fsync";
        failed = fsync(fd) != 0;
    }
    int err = errno;
    if (close(fd) != 0 && !failed) {
        step = "close";
        failed = 1;
        err = errno;
    }
    if (!failed) {
        step = "rename";
        failed = rename(tmp, path) != 0;
        err = errno;
    }
    if (failed) {
        unlink(tmp);
        free(tmp);
        return pood_fail(PROTOOD_E_IO, func, "path '%s': %s failed: %s", path, step, strerror(err));
    }
    free(tmp);
    sync_parent_dir(path);
    return PROTOOD_OK;
}
