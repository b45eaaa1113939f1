/* Writes what tests/rng_reference.py checks against its own implementation:
 *   bank_write_helper npy  OUT.npy SCHEME SEED C K D   prototypes after init_random(SCHEME, SEED)
 *                                                       (SCHEME 0: a new bank, untouched)
 *   bank_write_helper save OUT.pdb SCHEME SEED C K D   the same bank, with the parameters below,
 *                                                       saved with protood_bank_save */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protood.h"

/* Keys 1..10; rng_reference.py holds the same list. */
static const double params[10] = {0.25, 0.3, 0.02, 7, 2, 0.5, 0.25, 2.0, 0.2, 0.09};

static int fail(const char *what)
{
    fprintf(stderr, "bank_write_helper: %s: %s\n", what, protood_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 8 || (strcmp(argv[1], "npy") != 0 && strcmp(argv[1], "save") != 0)) {
        fprintf(stderr, "usage: bank_write_helper npy|save OUT SCHEME SEED C K D\n");
        return 2;
    }
    int32_t scheme = (int32_t)strtol(argv[3], NULL, 10);
    uint64_t seed = strtoull(argv[4], NULL, 10);
    int64_t c = strtoll(argv[5], NULL, 10), k = strtoll(argv[6], NULL, 10), d = strtoll(argv[7], NULL, 10);
    protood_bank *bank;
    if (protood_bank_create(&bank, c, k, d) != PROTOOD_OK)
        return fail("create");
    if (scheme != 0 && protood_bank_init_random(bank, scheme, seed) != PROTOOD_OK)
        return fail("init_random");
    int status = 0;
    if (strcmp(argv[1], "npy") == 0) {
        float *p = malloc((size_t)(c * k * d) * sizeof *p);
        if (!p || protood_bank_get_prototypes(bank, p) != PROTOOD_OK ||
            protood_npy_write_f32(argv[2], c * k, d, p) != PROTOOD_OK)
            status = fail("write prototypes");
        free(p);
    } else {
        for (int32_t key = 1; key <= 10 && status == 0; key++)
            if (protood_bank_set_param(bank, key, params[key - 1]) != PROTOOD_OK)
                status = fail("set_param");
        if (status == 0 && protood_bank_save(bank, argv[2]) != PROTOOD_OK)
            status = fail("save");
    }
    protood_bank_free(bank);
    return status;
}
