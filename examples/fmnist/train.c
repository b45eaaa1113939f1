/* The three training loops. They share everything (network body, data order, augmentation,
 * optimiser, schedule) except the loss on top of the network:
 *   PALM   projection head -> protood_palm_step  (a mixture of K prototypes per class)
 *   CIDER  projection head -> protood_cider_step (one prototype per class)
 *   CE     linear classifier -> softmax cross-entropy (the baseline)
 * libprotood's steps return d(loss)/d(head output); the network backpropagates it like any other
 * loss gradient. */
#include "fmnist.h"

#include <math.h>
#include <protood/protood.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const fm_method_names[FM_N_METHODS] = {"PALM", "CIDER", "CE"};

#define HIDDEN1 512
#define EMBED_DIM 256 /* the penultimate layer: what the scorers see */
#define PROJ_HIDDEN 256
#define PROJ_DIM 128 /* the hyperspherical embedding the losses act on */

static int check(protood_status status, const char *call)
{
    if (status == PROTOOD_OK)
        return 0;
    return fm_fail("%s failed: %s (%s)", call, protood_last_error(), protood_status_string(status));
}

/* Softmax cross-entropy averaged over n rows; writes d(loss)/d(logits). */
static double cross_entropy(int64_t n, int64_t classes, const float *logits, const int32_t *labels,
                            float *grad)
{
    double loss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * classes;
        float *g = grad + i * classes;
        float top = z[0];
        for (int64_t c = 1; c < classes; c++)
            top = z[c] > top ? z[c] : top;
        double sum = 0.0;
        for (int64_t c = 0; c < classes; c++)
            sum += exp((double)(z[c] - top));
        loss += log(sum) - (double)(z[labels[i]] - top);
        for (int64_t c = 0; c < classes; c++)
            g[c] = (float)(exp((double)(z[c] - top)) / sum) / (float)n;
        g[labels[i]] -= 1.0f / (float)n;
    }
    return loss / (double)n;
}

/* CIDER starts its prototypes at the class means of the untrained network's embeddings. */
static int init_cider_bank(protood_bank *bank, fm_net *net, const fm_set *train, uint64_t seed)
{
    float *h = fm_alloc((size_t)train->n, PROJ_DIM * sizeof(float), "CIDER initial features");
    float *x = fm_alloc((size_t)net->max_batch, FM_PIXELS * sizeof(float), "CIDER batch");
    int status = -1;
    if (h && x) {
        for (int64_t first = 0; first < train->n; first += net->max_batch) {
            int64_t count = train->n - first < net->max_batch ? train->n - first : net->max_batch;
            fm_standardise(train, first, count, x);
            memcpy(h + first * PROJ_DIM, fm_net_forward(net, count, x),
                   (size_t)(count * PROJ_DIM) * sizeof(float));
        }
        status = check(protood_bank_init_from_features(bank, train->n, h, train->labels, seed),
                       "protood_bank_init_from_features");
    }
    free(h);
    free(x);
    return status;
}

static int make_bank(fm_method method, const fm_train_config *config, fm_net *net,
                     const fm_set *train, protood_bank **out)
{
    *out = NULL;
    if (method == FM_CE)
        return 0;
    protood_bank *bank = NULL;
    int64_t k = method == FM_PALM ? config->palm_protos : 1;
    if (check(protood_bank_create(&bank, FM_N_IN, k, PROJ_DIM), "protood_bank_create") != 0)
        return -1;
    int status;
    if (method == FM_PALM)
        /* The reference PALM initialisation: random directions in the positive orthant. */
        status = check(protood_bank_set_param(bank, PROTOOD_BANK_MOMENTUM, config->palm_momentum),
                       "protood_bank_set_param(MOMENTUM)") ||
                 check(protood_bank_init_random(bank, PROTOOD_INIT_POSITIVE, config->seed),
                       "protood_bank_init_random");
    else
        status = check(protood_bank_set_param(bank, PROTOOD_BANK_MOMENTUM, config->cider_momentum),
                       "protood_bank_set_param(MOMENTUM)") ||
                 init_cider_bank(bank, net, train, config->seed);
    if (status != 0) {
        protood_bank_free(bank);
        return -1;
    }
    *out = bank;
    return 0;
}

int fm_train(fm_method method, const fm_train_config *config, const fm_set *train, fm_net *net)
{
    const char *name = fm_method_names[method];
    int64_t batch = config->batch < train->n ? config->batch : train->n;
    int64_t rows = 2 * batch; /* two views per image */
    int64_t steps_per_epoch = train->n / batch, total_steps = steps_per_epoch * config->epochs;
    /* Same seed for every method: the encoder layers start from the same weights each time. */
    int64_t ce_widths[] = {FM_PIXELS, HIDDEN1, EMBED_DIM, FM_N_IN};
    int64_t proj_widths[] = {FM_PIXELS, HIDDEN1, EMBED_DIM, PROJ_HIDDEN, PROJ_DIM};
    if (method == FM_CE ? fm_net_create(net, 3, ce_widths, 2, rows, config->seed * 16 + 5)
                        : fm_net_create(net, 4, proj_widths, 2, rows, config->seed * 16 + 5))
        return -1;
    int64_t out_dim = net->layer[net->n_layers - 1].out;

    protood_bank *bank = NULL;
    float *x = fm_alloc((size_t)rows, FM_PIXELS * sizeof(float), "training batch");
    float *grad = fm_alloc((size_t)rows, (size_t)out_dim * sizeof(float), "loss gradient");
    int32_t *labels = fm_alloc((size_t)rows, sizeof(int32_t), "batch labels");
    int64_t *order = fm_alloc((size_t)train->n, sizeof(int64_t), "batch order");
    int status = -1;
    if (!x || !grad || !labels || !order || make_bank(method, config, net, train, &bank) != 0)
        goto done;

    fm_rng rng;
    fm_rng_seed(&rng, config->seed * 16 + 6);
    for (int64_t i = 0; i < train->n; i++)
        order[i] = i;
    int64_t step = 0;
    double start = fm_seconds();
    for (int epoch = 1; epoch <= config->epochs; epoch++) {
        double epoch_start = fm_seconds(), sum[3] = {0, 0, 0};
        fm_rng_shuffle(&rng, order, train->n);
        for (int64_t s = 0; s < steps_per_epoch; s++, step++) {
            const int64_t *idx = order + s * batch;
            fm_augment_two_views(&rng, train, idx, batch, x);
            for (int64_t i = 0; i < batch; i++)
                labels[i] = labels[batch + i] = train->labels[idx[i]];
            const float *out = fm_net_forward(net, rows, x);
            double losses[3] = {0, 0, 0};
            if (method == FM_PALM) {
                if (check(protood_palm_step(bank, rows, out, labels, losses, grad), "protood_palm_step"))
                    goto done;
            } else if (method == FM_CIDER) {
                if (check(protood_cider_step(bank, rows, out, labels, losses, grad), "protood_cider_step"))
                    goto done;
            } else {
                losses[0] = cross_entropy(rows, out_dim, out, labels, grad);
            }
            if (!isfinite(losses[0])) {
                fm_fail("%s: the loss diverged (%g) at epoch %d step %lld; try a smaller learning rate",
                        name, losses[0], epoch, (long long)s);
                goto done;
            }
            for (int j = 0; j < 3; j++)
                sum[j] += losses[j];
            fm_net_backward(net, rows, grad);
            /* Cosine decay from lr to 0 over the whole run, updated every step. */
            float lr = config->lr * 0.5f *
                       (1.0f + (float)cos(3.141592653589793 * (double)step / (double)total_steps));
            fm_net_sgd(net, lr, config->momentum, config->weight_decay);
        }
        double n = (double)steps_per_epoch;
        if (method == FM_CE)
            fprintf(stderr, "%-5s epoch %2d/%d  loss %.4f  %.1f s (total %.1f s)\n", name, epoch,
                    config->epochs, sum[0] / n, fm_seconds() - epoch_start, fm_seconds() - start);
        else
            fprintf(stderr, "%-5s epoch %2d/%d  loss %.4f (%s %.4f, %s %.4f)  %.1f s (total %.1f s)\n",
                    name, epoch, config->epochs, sum[0] / n, method == FM_PALM ? "mle" : "comp",
                    sum[1] / n, method == FM_PALM ? "pcon" : "dis", sum[2] / n,
                    fm_seconds() - epoch_start, fm_seconds() - start);
    }
    status = 0;
done:
    protood_bank_free(bank);
    free(x);
    free(grad);
    free(labels);
    free(order);
    if (status != 0)
        fm_net_free(net);
    return status;
}
