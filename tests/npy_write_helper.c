/* Writes the files that tests/npy_numpy_reads.py loads with NumPy. */
#include <stdio.h>

#include "protood.h"

static int must(protood_status st)
{
    if (st != PROTOOD_OK) {
        fprintf(stderr, "npy_write_helper: %s\n", protood_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    char path[4096];
    float m[24];
    for (int i = 0; i < 24; i++)
        m[i] = (float)i * 0.25f - 2.5f;
    snprintf(path, sizeof path, "%s/matrix.npy", argv[1]);
    if (must(protood_npy_write_f32(path, 4, 6, m)))
        return 1;
    const float v[5] = {0.5f, -1.0f, 3e38f, -0.0f, 1e-40f};
    snprintf(path, sizeof path, "%s/vector.npy", argv[1]);
    if (must(protood_npy_write_f32_vector(path, 5, v)))
        return 1;
    const int32_t lab[4] = {3, -7, INT32_MAX, INT32_MIN};
    snprintf(path, sizeof path, "%s/labels.npy", argv[1]);
    if (must(protood_npy_write_i32(path, 4, lab)))
        return 1;
    snprintf(path, sizeof path, "%s/empty.npy", argv[1]);
    return must(protood_npy_write_f32(path, 0, 3, NULL));
}
