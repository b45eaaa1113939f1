/* The smallest program using libprotood from outside: built with
 *   cc consumer.c $(pkg-config --cflags --libs protood)
 * It checks that the library it loaded is the ABI it was compiled for, then writes and reads
 * back a .npy file. */
#include <protood/protood.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (protood_abi_version() != PROTOOD_ABI_VERSION) {
        fprintf(stderr, "libprotood ABI %u, compiled for %d\n", protood_abi_version(), PROTOOD_ABI_VERSION);
        return 1;
    }
    const char *path = argc > 1 ? argv[1] : "consumer.npy";
    const float x[6] = {1, 2, 3, 4, 5, 6};
    float back[6];
    if (protood_npy_write_f32(path, 2, 3, x) != PROTOOD_OK ||
        protood_npy_read_f32(path, 2, 3, back) != PROTOOD_OK) {
        fprintf(stderr, "consumer: %s\n", protood_last_error());
        return 1;
    }
    for (int i = 0; i < 6; i++)
        if (back[i] != x[i])
            return 1;
    printf("libprotood %s (%s): ok\n", protood_version_string(), protood_build_info());
    return 0;
}
