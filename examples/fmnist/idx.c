/* Reading IDX files, the format of MNIST and Fashion-MNIST: a big-endian header
 *   0x00 0x00 <type: 0x08 = unsigned byte> <number of dimensions>, then one uint32 per dimension,
 * then the bytes. Debian ships them gzip'd; zlib's gzread also reads an uncompressed file as is. */
#include "fmnist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* gzread takes an unsigned count: read big buffers in pieces. */
static int read_exactly(gzFile file, const char *path, uint8_t *buf, size_t size, const char *what)
{
    while (size > 0) {
        unsigned piece = size > (1u << 30) ? (1u << 30) : (unsigned)size;
        int got = gzread(file, buf, piece);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(file, &zerr);
            return fm_fail("%s: corrupt gzip data while reading the %s: %s", path, what, msg);
        }
        if (got == 0)
            return fm_fail("%s: truncated: the file ends inside the %s", path, what);
        buf += got;
        size -= (size_t)got;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int fm_idx_read(const char *path, int expected_dims, fm_idx *out)
{
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile file = gzopen(path, "rb");
    if (!file)
        return fm_fail("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");

    uint8_t header[4 + 3 * 4];
    int status = -1;
    uint8_t *data = NULL;
    if (read_exactly(file, path, header, 4, "header") != 0)
        goto done;
    if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] != expected_dims) {
        fm_fail("%s: not an IDX file of unsigned bytes with %d dimension%s (magic %02x %02x %02x %02x)",
                path, expected_dims, expected_dims == 1 ? "" : "s", header[0], header[1], header[2],
                header[3]);
        goto done;
    }
    if (read_exactly(file, path, header + 4, 4 * (size_t)expected_dims, "header") != 0)
        goto done;
    int64_t dims[3] = {1, 1, 1};
    for (int d = 0; d < expected_dims; d++) {
        dims[d] = be32(header + 4 + 4 * d);
        if (dims[d] == 0) {
            fm_fail("%s: dimension %d is 0", path, d);
            goto done;
        }
    }
    /* Each dimension is below 2^32, so the product of three fits only if we check it. */
    if (dims[1] > 4096 || dims[2] > 4096) {
        fm_fail("%s: implausible image size %lld x %lld", path, (long long)dims[1], (long long)dims[2]);
        goto done;
    }
    size_t size = (size_t)dims[0] * (size_t)dims[1] * (size_t)dims[2];
    data = fm_alloc(size, 1, path);
    if (!data || read_exactly(file, path, data, size, "data") != 0)
        goto done;
    uint8_t extra;
    if (gzread(file, &extra, 1) != 0) {
        fm_fail("%s: unexpected bytes after the %lld items the header announces", path,
                (long long)dims[0]);
        goto done;
    }
    out->count = dims[0];
    out->rows = dims[1];
    out->cols = dims[2];
    out->data = data;
    data = NULL;
    status = 0;
done:
    free(data);
    gzclose(file);
    return status;
}
