/* Fashion-MNIST as an open-set problem: classes 0..5 are in distribution (trained on, and their
 * test images are the positives), the test images of classes 6..9 are near OOD. Plus two synthetic
 * OOD sets of pure noise. */
#include "fmnist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const fm_class_names[FM_N_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

void fm_set_free(fm_set *set)
{
    free(set->pixels);
    free(set->labels);
    set->pixels = NULL;
    set->labels = NULL;
    set->n = 0;
}

void fm_data_free(fm_data *data)
{
    fm_set_free(&data->train);
    fm_set_free(&data->test);
    fm_set_free(&data->held_out);
    fm_set_free(&data->gauss);
    fm_set_free(&data->uniform);
}

static int set_alloc(fm_set *set, const char *name, int64_t n, int with_labels)
{
    set->name = name;
    set->n = n;
    set->pixels = fm_alloc((size_t)n, FM_PIXELS * sizeof(float), name);
    set->labels = with_labels ? fm_alloc((size_t)n, sizeof(int32_t), name) : NULL;
    return set->pixels && (set->labels || !with_labels) ? 0 : -1;
}

/* One split: the image and label files, checked against each other. */
static int read_split(const char *dir, const char *prefix, fm_idx *images, fm_idx *labels)
{
    char image_path[4096], label_path[4096];
    if (snprintf(image_path, sizeof image_path, "%s/%s-images-idx3-ubyte.gz", dir, prefix) >=
            (int)sizeof image_path ||
        snprintf(label_path, sizeof label_path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix) >=
            (int)sizeof label_path)
        return fm_fail("--data-dir: path too long");
    /* The usual cause of a missing file is a missing package: say which one. */
    if (access(image_path, R_OK) != 0 && errno == ENOENT)
        return fm_fail("Fashion-MNIST not found: %s does not exist (install the Debian package "
                       "dataset-fashion-mnist, or point --data-dir at the IDX files)", image_path);
    if (fm_idx_read(image_path, 3, images) != 0)
        return -1;
    if (images->rows != FM_SIDE || images->cols != FM_SIDE)
        return fm_fail("%s: images are %lld x %lld, expected %d x %d", image_path,
                       (long long)images->rows, (long long)images->cols, FM_SIDE, FM_SIDE);
    if (fm_idx_read(label_path, 1, labels) != 0)
        return -1;
    if (labels->count != images->count)
        return fm_fail("%s holds %lld labels but %s holds %lld images", label_path,
                       (long long)labels->count, image_path, (long long)images->count);
    for (int64_t i = 0; i < labels->count; i++)
        if (labels->data[i] >= FM_N_CLASSES)
            return fm_fail("%s: label %lld is %d, outside [0, %d)", label_path, (long long)i,
                           labels->data[i], FM_N_CLASSES);
    return 0;
}

/* Copy a seeded random subset of at most `limit` images whose class is in [lo, hi) into `set`
 * (limit 0 = all of them), with labels shifted by -lo when `with_labels`. */
static int select_classes(const fm_idx *images, const fm_idx *labels, int lo, int hi,
                          int64_t limit, int with_labels, fm_rng *rng, const char *name,
                          fm_set *set)
{
    int64_t *idx = fm_alloc((size_t)images->count, sizeof *idx, name);
    if (!idx)
        return -1;
    int64_t n = 0;
    for (int64_t i = 0; i < images->count; i++)
        if (labels->data[i] >= lo && labels->data[i] < hi)
            idx[n++] = i;
    fm_rng_shuffle(rng, idx, n);
    if (limit > 0 && limit < n)
        n = limit;
    if (set_alloc(set, name, n, with_labels) != 0) {
        free(idx);
        return -1;
    }
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *src = images->data + idx[r] * FM_PIXELS;
        float *dst = set->pixels + r * FM_PIXELS;
        for (int p = 0; p < FM_PIXELS; p++)
            dst[p] = (float)src[p] * (1.0f / 255.0f);
        if (with_labels)
            set->labels[r] = labels->data[idx[r]] - lo;
    }
    free(idx);
    return 0;
}

/* Noise images in pixel space, so that they pass through the same standardisation as the data. */
static int make_noise(fm_set *set, const char *name, int64_t n, int gaussian, fm_rng *rng)
{
    if (set_alloc(set, name, n, 0) != 0)
        return -1;
    for (int64_t i = 0; i < n * FM_PIXELS; i++) {
        float v = gaussian ? 0.5f + 0.25f * fm_rng_normal(rng) : fm_rng_uniform(rng);
        set->pixels[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
    return 0;
}

int fm_data_load(const fm_data_config *config, fm_data *out)
{
    memset(out, 0, sizeof *out);
    fm_idx train_images = {0}, train_labels = {0}, test_images = {0}, test_labels = {0};
    /* One stream per purpose: changing the test subset does not change the training subset. */
    fm_rng train_rng, test_rng, noise_rng;
    fm_rng_seed(&train_rng, config->seed * 16 + 1);
    fm_rng_seed(&test_rng, config->seed * 16 + 2);
    fm_rng_seed(&noise_rng, config->seed * 16 + 3);

    int status = -1;
    if (read_split(config->dir, "train", &train_images, &train_labels) != 0 ||
        read_split(config->dir, "t10k", &test_images, &test_labels) != 0)
        goto done;
    if (select_classes(&train_images, &train_labels, 0, FM_N_IN, config->train_size, 1, &train_rng,
                       "ID train", &out->train) != 0 ||
        select_classes(&test_images, &test_labels, 0, FM_N_IN, config->test_size, 1, &test_rng,
                       "ID test", &out->test) != 0 ||
        select_classes(&test_images, &test_labels, FM_N_IN, FM_N_CLASSES, config->test_size, 0,
                       &test_rng, "held-out classes", &out->held_out) != 0 ||
        make_noise(&out->gauss, "Gaussian noise", config->noise_size, 1, &noise_rng) != 0 ||
        make_noise(&out->uniform, "uniform noise", config->noise_size, 0, &noise_rng) != 0)
        goto done;
    if (config->train_size > out->train.n)
        fprintf(stderr, "fmnist_ood: note: --train-size %lld, but the ID training split has only "
                "%lld images; using all\n", (long long)config->train_size, (long long)out->train.n);
    status = 0;
done:
    free(train_images.data);
    free(train_labels.data);
    free(test_images.data);
    free(test_labels.data);
    if (status != 0)
        fm_data_free(out);
    return status;
}
