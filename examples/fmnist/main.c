/* fmnist_ood: train PALM, CIDER and a cross-entropy baseline on six Fashion-MNIST classes and
 * measure how well each separates in-distribution test images from four OOD sets.
 * Run with --help for the options; docs/benchmark-fmnist.md describes the protocol. */
#include "fmnist.h"

#include <errno.h>
#include <limits.h>
#include <protood/protood.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"

typedef struct options {
    const char *data_dir;
    int epochs;
    int64_t train_size, test_size, noise_size, batch, knn_k, palm_k;
    uint64_t seed;
    int threads;
    int methods[FM_N_METHODS]; /* run method m if methods[m] */
    double lr;
    char *fonts_arg; /* comma-separated list, or NULL for the defaults */
} options;

static void usage(FILE *out)
{
    fprintf(out,
        "usage: fmnist_ood [options]\n"
        "Train PALM, CIDER and a cross-entropy baseline on Fashion-MNIST classes 0-5 and report\n"
        "FPR at 95%% TPR and AUROC (in %%) against four OOD sets: the held-out classes 6-9, letters A-J\n"
        "rendered from system fonts, Gaussian noise and uniform noise.\n"
        "\n"
        "  --epochs N       training epochs per method (default 12; --quick: 1)\n"
        "  --train-size N   ID training images, a seeded random subset; 0 = all 36000\n"
        "                   (default 12000; --quick: 1200)\n"
        "  --test-size N    ID test and held-out test images, each; 0 = all 6000 / 4000\n"
        "                   (default 0; --quick: 600)\n"
        "  --noise-size N   images per noise set (default 2000; --quick: 300)\n"
        "  --seed N         seeds the data subset, noise, weights, batch order and augmentation\n"
        "                   (default 1)\n"
        "  --threads N      OpenMP and BLAS threads (default: the number of online CPUs)\n"
        "  --methods LIST   comma-separated subset of palm,cider,ce (default: all three)\n"
        "  --batch N        images per step, two views each (default 128)\n"
        "  --lr X           initial learning rate of every method (default 0.05)\n"
        "  --palm-k N       PALM prototypes per class (default 6)\n"
        "  --knn-k N        neighbour rank of the KNN scorer (default 50)\n"
        "  --data-dir DIR   directory of the gzip'd IDX files\n"
        "                   (default " DEFAULT_DATA_DIR ", Debian package dataset-fashion-mnist)\n"
        "  --fonts LIST     comma-separated font files for the letters (default: 67 faces from\n"
        "                   fonts-dejavu-core, fonts-liberation, fonts-freefont-ttf, fonts-urw-base35)\n"
        "  --quick          a smoke run of a few seconds (the defaults marked --quick above)\n"
        "  --help           this text\n"
        "\n"
        "The table goes to stdout, progress to stderr. For a given seed and thread count the output\n"
        "is the same on every run on the same machine and build.\n");
}

/* Whole-string integer in [lo, hi], or a one-line error naming the option. */
static int parse_int(const char *option, const char *text, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
        return fm_fail("%s: expected an integer in [%lld, %lld], got '%s' (see --help)", option,
                       (long long)lo, (long long)hi, text);
    *out = v;
    return 0;
}

static int parse_methods(const char *text, int *methods)
{
    static const char *const keys[FM_N_METHODS] = {"palm", "cider", "ce"};
    memset(methods, 0, FM_N_METHODS * sizeof *methods);
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int m = 0; m < FM_N_METHODS; m++)
            if (strlen(keys[m]) == len && strncmp(p, keys[m], len) == 0)
                found = m;
        if (found < 0)
            return fm_fail("--methods: unknown method '%.*s' in '%s' (choose from palm,cider,ce)",
                           (int)len, p, text);
        if (methods[found])
            return fm_fail("--methods: '%s' given twice in '%s'", keys[found], text);
        methods[found] = 1;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

/* Split the --fonts argument in place into a NULL-terminated list. */
static const char **split_fonts(char *text)
{
    size_t n = 1;
    for (const char *c = text; *c; c++)
        n += *c == ',';
    const char **list = fm_alloc(n + 1, sizeof *list, "font list");
    if (!list)
        return NULL;
    size_t i = 0;
    for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ","))
        list[i++] = tok;
    list[i] = NULL;
    return list;
}

static int parse_options(int argc, char **argv, options *opt)
{
    int quick = 0;
    int64_t epochs = -1, train_size = -1, test_size = -1, noise_size = -1, threads = -1, seed = 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    memset(opt, 0, sizeof *opt);
    opt->data_dir = DEFAULT_DATA_DIR;
    opt->batch = 128;
    opt->knn_k = 50;
    opt->palm_k = 6;
    opt->lr = 0.05; /* tried 0.2 too: no better for PALM or CIDER on this MLP */
    for (int m = 0; m < FM_N_METHODS; m++)
        opt->methods[m] = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "--quick") == 0) {
            quick = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0)
            return fm_fail("unexpected argument '%s' (see --help)", arg);
        static const char *const with_value[] = {
            "--epochs", "--train-size", "--test-size", "--noise-size", "--seed", "--threads",
            "--methods", "--batch", "--lr", "--palm-k", "--knn-k", "--data-dir", "--fonts", NULL};
        int known = 0;
        for (int k = 0; with_value[k]; k++)
            known |= strcmp(arg, with_value[k]) == 0;
        if (!known)
            return fm_fail("unknown option '%s' (see --help)", arg);
        if (i + 1 >= argc)
            return fm_fail("%s needs a value (see --help)", arg);
        const char *value = argv[++i];
        int status = 0;
        if (strcmp(arg, "--epochs") == 0)
            status = parse_int(arg, value, 1, 10000, &epochs);
        else if (strcmp(arg, "--train-size") == 0)
            status = parse_int(arg, value, 0, 100000000, &train_size);
        else if (strcmp(arg, "--test-size") == 0)
            status = parse_int(arg, value, 0, 100000000, &test_size);
        else if (strcmp(arg, "--noise-size") == 0)
            status = parse_int(arg, value, 1, 1000000, &noise_size);
        else if (strcmp(arg, "--seed") == 0)
            status = parse_int(arg, value, 0, INT64_MAX, &seed);
        else if (strcmp(arg, "--threads") == 0)
            status = parse_int(arg, value, 1, 1024, &threads);
        else if (strcmp(arg, "--batch") == 0)
            status = parse_int(arg, value, 2, 4096, &opt->batch);
        else if (strcmp(arg, "--palm-k") == 0)
            status = parse_int(arg, value, 1, 64, &opt->palm_k);
        else if (strcmp(arg, "--knn-k") == 0)
            status = parse_int(arg, value, 1, 100000, &opt->knn_k);
        else if (strcmp(arg, "--methods") == 0)
            status = parse_methods(value, opt->methods);
        else if (strcmp(arg, "--data-dir") == 0)
            opt->data_dir = value;
        else if (strcmp(arg, "--fonts") == 0)
            opt->fonts_arg = (char *)value;
        else if (strcmp(arg, "--lr") == 0) {
            char *end;
            errno = 0;
            opt->lr = strtod(value, &end);
            if (errno != 0 || end == value || *end != '\0' || !(opt->lr > 0.0 && opt->lr <= 10.0))
                status = fm_fail("--lr: expected a number in (0, 10], got '%s' (see --help)", value);
        }
        if (status != 0)
            return -1;
    }
    opt->epochs = (int)(epochs >= 0 ? epochs : quick ? 1 : 12);
    opt->train_size = train_size >= 0 ? train_size : quick ? 1200 : 12000;
    opt->test_size = test_size >= 0 ? test_size : quick ? 600 : 0;
    opt->noise_size = noise_size >= 0 ? noise_size : quick ? 300 : 2000;
    opt->threads = (int)(threads >= 0 ? threads : cpus > 0 ? cpus : 1);
    opt->seed = (uint64_t)seed;
    if (opt->train_size != 0 && opt->train_size <= opt->knn_k)
        return fm_fail("--train-size %lld: must exceed --knn-k (%lld) so that every query has a "
                       "k-th neighbour", (long long)opt->train_size, (long long)opt->knn_k);
    if (opt->train_size != 0 && opt->train_size < opt->batch)
        return fm_fail("--train-size %lld: smaller than one batch (--batch %lld)",
                       (long long)opt->train_size, (long long)opt->batch);
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;
    if (protood_abi_version() != PROTOOD_ABI_VERSION) {
        fm_fail("libprotood ABI %u loaded, compiled for %d", protood_abi_version(), PROTOOD_ABI_VERSION);
        return 1;
    }
    /* One knob for both pools of threads the run uses: the library's OpenMP loops and the BLAS
     * (which the network's own sgemm calls share). */
    if (protood_set_threads(opt.threads) != PROTOOD_OK) {
        fm_fail("protood_set_threads(%d) failed: %s", opt.threads, protood_last_error());
        return 1;
    }
    double start = fm_seconds();

    fm_data data;
    fm_set letters = {0};
    const char **fonts = NULL;
    int status = 1, fonts_used = 0;
    fm_data_config data_config = {opt.data_dir, opt.train_size, opt.test_size, opt.noise_size,
                                  opt.seed};
    if (fm_data_load(&data_config, &data) != 0)
        return 1;
    if (opt.fonts_arg && !(fonts = split_fonts(opt.fonts_arg)))
        goto done;
    if (fm_letters_render(fonts ? fonts : fm_default_fonts, &letters, &fonts_used) != 0)
        goto done;
    fprintf(stderr,
            "fmnist_ood: ID: %lld training / %lld test images of classes 0-5; OOD: %lld held-out, "
            "%lld letters (%d fonts), %lld + %lld noise; %d threads; %.1f s\n",
            (long long)data.train.n, (long long)data.test.n, (long long)data.held_out.n,
            (long long)letters.n, fonts_used, (long long)data.gauss.n, (long long)data.uniform.n,
            opt.threads, fm_seconds() - start);

    fm_eval_sets sets = {&data.train, &data.test, {&data.held_out, &letters, &data.gauss, &data.uniform}};
    fm_table table = {.ood_names = {"held-out classes", "letters A-J", "Gaussian noise", "uniform noise"}};
    for (int m = 0; m < FM_N_METHODS; m++) {
        if (!opt.methods[m])
            continue;
        fm_train_config train_config = {
            .epochs = opt.epochs,
            .batch = opt.batch,
            .lr = (float)opt.lr,
            .momentum = 0.9f,
            .weight_decay = 5e-4f,
            .palm_protos = opt.palm_k,
            .palm_momentum = 0.999,
            .cider_momentum = 0.5,
            .seed = opt.seed,
        };
        fm_net net;
        if (fm_train((fm_method)m, &train_config, &data.train, &net) != 0)
            goto done;
        double t = fm_seconds();
        int eval_status = fm_evaluate((fm_method)m, &net, &sets, opt.knn_k, &table);
        fm_net_free(&net);
        if (eval_status != 0)
            goto done;
        fprintf(stderr, "%-5s evaluated in %.1f s\n", fm_method_names[m], fm_seconds() - t);
    }

    printf("Fashion-MNIST open-set OOD: ID = classes 0-5 (%lld train, %lld test images), seed %llu, "
           "%d epochs, %d threads\n",
           (long long)data.train.n, (long long)data.test.n, (unsigned long long)opt.seed,
           opt.epochs, opt.threads);
    printf("OOD: held-out classes 6-9 (%lld), letters A-J (%lld, %d fonts), Gaussian noise (%lld), "
           "uniform noise (%lld)\n",
           (long long)data.held_out.n, (long long)letters.n, fonts_used, (long long)data.gauss.n,
           (long long)data.uniform.n);
    printf("FPR95 = FPR at 95%% TPR (lower is better), AUROC (higher is better), both in %%\n\n");
    fm_table_print(&table);
    printf("\ntotal %.1f s\n", fm_seconds() - start);
    status = 0;
done:
    fm_data_free(&data);
    fm_set_free(&letters);
    free(fonts);
    return status;
}
