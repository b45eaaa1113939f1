/* Two views per training image. Random translations by up to FM_MAX_SHIFT pixels (a random 28 x 28
 * crop of the image padded with black) and horizontal flips: clothing is left-right symmetric in
 * meaning, and a shifted garment is the same garment. Stronger augmentation (colour, blur) would
 * matter for natural images, less for these centred grey-scale ones. */
#include "fmnist.h"

static void one_view(fm_rng *rng, const float *src, float *dst)
{
    int dy = (int)fm_rng_below(rng, 2 * FM_MAX_SHIFT + 1) - FM_MAX_SHIFT;
    int dx = (int)fm_rng_below(rng, 2 * FM_MAX_SHIFT + 1) - FM_MAX_SHIFT;
    int flip = (int)fm_rng_below(rng, 2);
    const float background = -FM_PIXEL_MEAN / FM_PIXEL_STD; /* a black pixel, standardised */
    for (int y = 0; y < FM_SIDE; y++) {
        int sy = y + dy;
        for (int x = 0; x < FM_SIDE; x++) {
            int sx = (flip ? FM_SIDE - 1 - x : x) + dx;
            dst[y * FM_SIDE + x] = sy < 0 || sy >= FM_SIDE || sx < 0 || sx >= FM_SIDE
                                       ? background
                                       : (src[sy * FM_SIDE + sx] - FM_PIXEL_MEAN) / FM_PIXEL_STD;
        }
    }
}

void fm_augment_two_views(fm_rng *rng, const fm_set *set, const int64_t *idx, int64_t count,
                          float *x)
{
    for (int64_t i = 0; i < count; i++) {
        const float *src = set->pixels + idx[i] * FM_PIXELS;
        one_view(rng, src, x + i * FM_PIXELS);
        one_view(rng, src, x + (count + i) * FM_PIXELS);
    }
}

void fm_standardise(const fm_set *set, int64_t first, int64_t count, float *x)
{
    const float *src = set->pixels + first * FM_PIXELS;
    for (int64_t i = 0; i < count * FM_PIXELS; i++)
        x[i] = (src[i] - FM_PIXEL_MEAN) / FM_PIXEL_STD;
}
