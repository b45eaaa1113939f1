/* fmnist_ood: an open-set OOD benchmark on Fashion-MNIST, end to end in C.
 *
 * The program trains a small encoder three ways (PALM, CIDER, cross-entropy), embeds in-distribution
 * and out-of-distribution images with it, and scores them with libprotood. Each .c file holds one
 * concept; this header is the map:
 *
 *   util.c     error reporting, checked allocation, the seeded random generator
 *   idx.c      reading gzip'd IDX files (the MNIST file format)
 *   dataset.c  Fashion-MNIST split into in-distribution / held-out classes, the noise sets
 *   letters.c  letters A-J rendered with FreeType from Debian's font packages (far OOD)
 *   augment.c  two random views per training image (shift, horizontal flip)
 *   encoder.c  the network: dense layers with ReLU, forward, backward, SGD with momentum
 *   train.c    the training loops: PALM, CIDER and cross-entropy
 *   evaluate.c embeddings, scorers, metrics and the result table
 *   main.c     options and the order of the whole run
 */
#ifndef FMNIST_H
#define FMNIST_H

#include <stddef.h>
#include <stdint.h>

#define FM_SIDE 28
#define FM_PIXELS (FM_SIDE * FM_SIDE)

/* ---- util.c ---------------------------------------------------------------------------------- */

/* Print "fmnist_ood: <message>" on stderr as one line; returns -1 so callers can write
 * `return fm_fail(...)`. Every function below that returns int returns 0 or -1, and on -1 it has
 * already printed why. */
int fm_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* malloc of count * size bytes with the overflow checked; prints and returns NULL on failure. */
void *fm_alloc(size_t count, size_t size, const char *what);
double fm_seconds(void); /* monotonic clock */

/* xoshiro256** seeded through splitmix64: the program's only source of randomness, so that a seed
 * fixes the data subset, the noise, the initial weights, the batch order and the augmentations. */
typedef struct fm_rng {
    uint64_t s[4];
} fm_rng;
void fm_rng_seed(fm_rng *rng, uint64_t seed);
uint64_t fm_rng_next(fm_rng *rng);
float fm_rng_uniform(fm_rng *rng);             /* [0, 1), 24 random bits */
uint32_t fm_rng_below(fm_rng *rng, uint32_t n); /* [0, n), unbiased; n >= 1 */
float fm_rng_normal(fm_rng *rng);              /* standard normal (Box-Muller) */
void fm_rng_shuffle(fm_rng *rng, int64_t *items, int64_t n);

/* ---- idx.c ----------------------------------------------------------------------------------- */

/* An IDX file of unsigned bytes: `count` items of `rows` x `cols` (1 x 1 for a label file). */
typedef struct fm_idx {
    int64_t count, rows, cols;
    uint8_t *data; /* count * rows * cols bytes; free() it */
} fm_idx;
/* Read a gzip'd (or plain) IDX file with 1 dimension (labels) or 3 dimensions (images), checking
 * the magic number, the sizes and that the file holds exactly that many bytes. */
int fm_idx_read(const char *path, int expected_dims, fm_idx *out);

/* ---- dataset.c ------------------------------------------------------------------------------- */

/* Images as float pixels in [0, 1] (white = 1, as in the IDX files), one row of FM_PIXELS each. */
typedef struct fm_set {
    const char *name;
    int64_t n;
    float *pixels; /* n x FM_PIXELS */
    int32_t *labels; /* n labels in [0, n_in_classes), or NULL for OOD sets */
} fm_set;
void fm_set_free(fm_set *set);

#define FM_N_CLASSES 10
#define FM_N_IN 6 /* classes 0..5 in distribution, 6..9 held out */
extern const char *const fm_class_names[FM_N_CLASSES];

typedef struct fm_data_config {
    const char *dir;     /* directory of the four .gz files */
    int64_t train_size;  /* ID training images used (a seeded random subset), 0 = all */
    int64_t test_size;   /* ID test and held-out test images used, each; 0 = all */
    int64_t noise_size;  /* images per noise set */
    uint64_t seed;
} fm_data_config;

typedef struct fm_data {
    fm_set train;    /* ID training split, labels 0..5 */
    fm_set test;     /* ID test split, labels 0..5 */
    fm_set held_out; /* test images of classes 6..9: near OOD */
    fm_set gauss;    /* N(0.5, 0.25^2) per pixel, clipped to [0, 1] */
    fm_set uniform;  /* U[0, 1) per pixel */
} fm_data;
int fm_data_load(const fm_data_config *config, fm_data *out);
void fm_data_free(fm_data *data);

/* ---- letters.c ------------------------------------------------------------------------------- */

/* The font files tried by default (Debian fonts-dejavu-core, fonts-liberation, fonts-freefont-ttf,
 * fonts-urw-base35), NULL-terminated. */
extern const char *const fm_default_fonts[];
/* Render A..J from every font in `fonts` (NULL-terminated) that loads: white glyph on black, scaled
 * to fit FM_LETTER_BOX pixels and centred in 28 x 28. A font that fails to load or lacks a letter
 * is skipped with a note on stderr; no usable font at all is an error. */
#define FM_LETTER_BOX 20
int fm_letters_render(const char *const *fonts, fm_set *out, int *fonts_used);

/* ---- augment.c ------------------------------------------------------------------------------- */

/* Network input: pixels standardised with the Fashion-MNIST training mean and deviation. */
#define FM_PIXEL_MEAN 0.2860f
#define FM_PIXEL_STD 0.3530f
#define FM_MAX_SHIFT 2 /* random crop of 28 x 28 from the image padded by 2 pixels */
/* Write two augmented views of images idx[0..count) into `x` (2 * count rows of network input):
 * rows 0..count-1 are the first views, rows count..2count-1 the second (the order the PALM and
 * CIDER reference code feeds its loss). */
void fm_augment_two_views(fm_rng *rng, const fm_set *set, const int64_t *idx, int64_t count,
                          float *x);
/* Network input for rows first..first+count-1 of `set`, unaugmented (evaluation). */
void fm_standardise(const fm_set *set, int64_t first, int64_t count, float *x);

/* ---- encoder.c ------------------------------------------------------------------------------- */

/* A fully connected layer y = act(x W + b), W stored in x out (row-major), with its gradient and
 * its momentum buffer. */
typedef struct fm_dense {
    int64_t in, out;
    int relu;
    float *w, *b, *grad_w, *grad_b, *vel_w, *vel_b;
} fm_dense;

#define FM_MAX_LAYERS 6
/* A stack of dense layers. The encoder is layers [0, embed_layers); its output (after ReLU) is the
 * embedding the scorers see. The remaining layers are the head: a projection head for PALM/CIDER,
 * the linear classifier for cross-entropy. */
typedef struct fm_net {
    int n_layers, embed_layers;
    fm_dense layer[FM_MAX_LAYERS];
    int64_t max_batch;
    const float *input;           /* the last forward's input (kept for backward) */
    float *act[FM_MAX_LAYERS];    /* act[l]: output of layer l, max_batch x layer[l].out */
    float *delta[2];              /* backward scratch, max_batch x widest layer */
} fm_net;
/* widths[0] is the input width, widths[i] the output of layer i-1; every layer but the last has a
 * ReLU. Weights He-uniform from `seed`, biases zero: two networks built from the same seed share
 * the initial weights of every layer they have in common. */
int fm_net_create(fm_net *net, int n_layers, const int64_t *widths, int embed_layers,
                  int64_t max_batch, uint64_t seed);
void fm_net_free(fm_net *net);
/* Forward n <= max_batch rows through all layers (or only the encoder); returns the output rows. */
const float *fm_net_forward(fm_net *net, int64_t n, const float *x);
const float *fm_net_embed(fm_net *net, int64_t n, const float *x);
/* Backward from d(loss)/d(output) of the last forward (n rows): fills the parameter gradients. */
void fm_net_backward(fm_net *net, int64_t n, const float *grad_out);
/* PyTorch-style SGD: v = momentum v + (g + wd w); w -= lr v. No weight decay on biases. */
void fm_net_sgd(fm_net *net, float lr, float momentum, float weight_decay);
int64_t fm_net_embed_dim(const fm_net *net);

/* ---- train.c --------------------------------------------------------------------------------- */

typedef enum fm_method { FM_PALM, FM_CIDER, FM_CE, FM_N_METHODS } fm_method;
extern const char *const fm_method_names[FM_N_METHODS];

typedef struct fm_train_config {
    int epochs;
    int64_t batch;       /* images per step; each gives two views */
    float lr, momentum, weight_decay;
    int64_t palm_protos; /* K for PALM */
    double palm_momentum;
    double cider_momentum;
    uint64_t seed;
} fm_train_config;

/* Build the network for `method` and train it on `train`. */
int fm_train(fm_method method, const fm_train_config *config, const fm_set *train, fm_net *net);

/* ---- evaluate.c ------------------------------------------------------------------------------ */

#define FM_N_OOD 4
#define FM_MAX_ROWS 16

typedef struct fm_row {
    char name[32];
    double fpr[FM_N_OOD], auroc[FM_N_OOD]; /* fractions in [0, 1] */
} fm_row;

typedef struct fm_table {
    const char *ood_names[FM_N_OOD];
    int n_rows;
    fm_row row[FM_MAX_ROWS];
} fm_table;

typedef struct fm_eval_sets {
    const fm_set *train, *test;
    const fm_set *ood[FM_N_OOD];
} fm_eval_sets;

/* Embed every set with `net`, fit KNN (k = knn_k) and Mahalanobis on the training embeddings,
 * score, and add one table row per scorer; for cross-entropy also the MSP row. */
int fm_evaluate(fm_method method, fm_net *net, const fm_eval_sets *sets, int64_t knn_k,
                fm_table *table);
void fm_table_print(const fm_table *table);

#endif
