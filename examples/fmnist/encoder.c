/* The network: a stack of fully connected layers, every product a cblas_sgemm on a whole batch.
 * Buffers are sized once for the largest batch, so training allocates nothing per step. */
#include "fmnist.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int dense_create(fm_dense *d, int64_t in, int64_t out, int relu, fm_rng *rng)
{
    memset(d, 0, sizeof *d);
    d->in = in;
    d->out = out;
    d->relu = relu;
    size_t nw = (size_t)(in * out), nb = (size_t)out;
    d->w = fm_alloc(nw, sizeof(float), "weights");
    d->grad_w = fm_alloc(nw, sizeof(float), "weights");
    d->vel_w = fm_alloc(nw, sizeof(float), "weights");
    d->b = fm_alloc(nb, sizeof(float), "biases");
    d->grad_b = fm_alloc(nb, sizeof(float), "biases");
    d->vel_b = fm_alloc(nb, sizeof(float), "biases");
    if (!d->w || !d->grad_w || !d->vel_w || !d->b || !d->grad_b || !d->vel_b)
        return -1;
    /* He-uniform keeps the activations' scale through ReLU layers; the linear output layer gets
     * the smaller 1/sqrt(in) bound PyTorch uses. */
    float bound = relu ? sqrtf(6.0f / (float)in) : 1.0f / sqrtf((float)in);
    for (size_t i = 0; i < nw; i++)
        d->w[i] = bound * (2.0f * fm_rng_uniform(rng) - 1.0f);
    memset(d->b, 0, nb * sizeof(float));
    memset(d->vel_w, 0, nw * sizeof(float));
    memset(d->vel_b, 0, nb * sizeof(float));
    return 0;
}

static void dense_free(fm_dense *d)
{
    free(d->w);
    free(d->b);
    free(d->grad_w);
    free(d->grad_b);
    free(d->vel_w);
    free(d->vel_b);
}

int fm_net_create(fm_net *net, int n_layers, const int64_t *widths, int embed_layers,
                  int64_t max_batch, uint64_t seed)
{
    memset(net, 0, sizeof *net);
    if (n_layers < 1 || n_layers > FM_MAX_LAYERS || embed_layers < 1 || embed_layers > n_layers)
        return fm_fail("internal: bad network shape (%d layers, embedding after %d)", n_layers,
                       embed_layers);
    net->n_layers = n_layers;
    net->embed_layers = embed_layers;
    net->max_batch = max_batch;
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    int64_t widest = widths[0];
    for (int l = 0; l < n_layers; l++) {
        if (dense_create(&net->layer[l], widths[l], widths[l + 1], l < n_layers - 1, &rng) != 0)
            goto fail;
        net->act[l] = fm_alloc((size_t)max_batch, (size_t)widths[l + 1] * sizeof(float),
                               "activations");
        if (!net->act[l])
            goto fail;
        widest = widths[l + 1] > widest ? widths[l + 1] : widest;
    }
    for (int i = 0; i < 2; i++)
        if (!(net->delta[i] = fm_alloc((size_t)max_batch, (size_t)widest * sizeof(float), "gradients")))
            goto fail;
    return 0;
fail:
    fm_net_free(net);
    return -1;
}

void fm_net_free(fm_net *net)
{
    for (int l = 0; l < FM_MAX_LAYERS; l++) {
        dense_free(&net->layer[l]);
        free(net->act[l]);
    }
    free(net->delta[0]);
    free(net->delta[1]);
    memset(net, 0, sizeof *net);
}

int64_t fm_net_embed_dim(const fm_net *net)
{
    return net->layer[net->embed_layers - 1].out;
}

static const float *forward_layers(fm_net *net, int64_t n, const float *x, int n_layers)
{
    net->input = x;
    const float *in = x;
    for (int l = 0; l < n_layers; l++) {
        const fm_dense *d = &net->layer[l];
        float *y = net->act[l];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d->out, (int)d->in,
                    1.0f, in, (int)d->in, d->w, (int)d->out, 0.0f, y, (int)d->out);
        for (int64_t i = 0; i < n; i++) {
            float *row = y + i * d->out;
            for (int64_t j = 0; j < d->out; j++) {
                float v = row[j] + d->b[j];
                row[j] = d->relu && v < 0.0f ? 0.0f : v;
            }
        }
        in = y;
    }
    return in;
}

const float *fm_net_forward(fm_net *net, int64_t n, const float *x)
{
    return forward_layers(net, n, x, net->n_layers);
}

const float *fm_net_embed(fm_net *net, int64_t n, const float *x)
{
    return forward_layers(net, n, x, net->embed_layers);
}

void fm_net_backward(fm_net *net, int64_t n, const float *grad_out)
{
    const float *grad = grad_out; /* d(loss)/d(output of layer l) */
    for (int l = net->n_layers - 1; l >= 0; l--) {
        fm_dense *d = &net->layer[l];
        if (d->relu) {
            /* Only the layers below the last have a ReLU, so `grad` is our own scratch here. */
            float *g = (float *)grad;
            const float *y = net->act[l];
            for (int64_t i = 0; i < n * d->out; i++)
                if (y[i] <= 0.0f)
                    g[i] = 0.0f;
        }
        const float *in = l > 0 ? net->act[l - 1] : net->input;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d->in, (int)d->out, (int)n, 1.0f,
                    in, (int)d->in, grad, (int)d->out, 0.0f, d->grad_w, (int)d->out);
        memset(d->grad_b, 0, (size_t)d->out * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < d->out; j++)
                d->grad_b[j] += grad[i * d->out + j];
        if (l > 0) {
            float *below = net->delta[l % 2];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)d->in, (int)d->out,
                        1.0f, grad, (int)d->out, d->w, (int)d->out, 0.0f, below, (int)d->in);
            grad = below;
        }
    }
}

void fm_net_sgd(fm_net *net, float lr, float momentum, float weight_decay)
{
    for (int l = 0; l < net->n_layers; l++) {
        fm_dense *d = &net->layer[l];
        for (int64_t i = 0; i < d->in * d->out; i++) {
            d->vel_w[i] = momentum * d->vel_w[i] + d->grad_w[i] + weight_decay * d->w[i];
            d->w[i] -= lr * d->vel_w[i];
        }
        for (int64_t j = 0; j < d->out; j++) {
            d->vel_b[j] = momentum * d->vel_b[j] + d->grad_b[j];
            d->b[j] -= lr * d->vel_b[j];
        }
    }
}
