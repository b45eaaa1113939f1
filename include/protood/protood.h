/*
 * libprotood: out-of-distribution detection with prototype-based hyperspherical embeddings.
 *
 * This header is the manual. Conventions (docs/conventions.md):
 *   - Every function that can fail returns a protood_status: PROTOOD_OK (0) or a negative code.
 *     On failure it writes nothing to its outputs, leaves its handle exactly as it was, and
 *     protood_last_error() tells this thread which function, argument and value were at fault.
 *   - Matrices are contiguous row-major float32; counts and dimensions are int64_t; labels are
 *     int32_t in [0, n_classes). Outputs are allocated by the caller; the library never returns
 *     heap memory for the caller to free.
 *   - Threads: functions taking a const handle may be called on the same handle from several
 *     threads at once; functions taking a non-const handle need exclusive access to it.
 *   - The library never prints, aborts or exits.
 *
 * Plain C99, no static inline, no varargs, no enums or bool in signatures: binds as is from
 * C++, ctypes, cffi and bindgen.
 */
#ifndef PROTOOD_H
#define PROTOOD_H

#include <stddef.h>
#include <stdint.h>

#include "protood_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PROTOOD_BUILDING) && defined(__GNUC__)
#define PROTOOD_API __attribute__((visibility("default")))
#else
#define PROTOOD_API
#endif

/* ------------------------------------------------------------------------------------------ */
/* Status codes                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef int32_t protood_status;
#define PROTOOD_OK             0
#define PROTOOD_E_INVALID_ARG -1   /* NULL where not allowed, n < 1, unknown key, value out of range */
#define PROTOOD_E_NOMEM       -2
#define PROTOOD_E_SHAPE       -3   /* dimension does not match the handle, or size overflow */
#define PROTOOD_E_STATE       -4   /* e.g. scoring before fit, CIDER step on a bank with K > 1 */
#define PROTOOD_E_NONFINITE   -5   /* NaN or Inf in an input, or an all-zero feature row */
#define PROTOOD_E_LABEL       -6   /* label outside [0, n_classes) */
#define PROTOOD_E_IO          -7   /* file could not be opened, read or written */
#define PROTOOD_E_FORMAT      -8   /* malformed, truncated, corrupt or unsupported file or buffer */
#define PROTOOD_E_CALLBACK    -9   /* the caller's callback returned non-zero */
#define PROTOOD_E_UNSUPPORTED -10  /* feature not built in */
#define PROTOOD_E_INTERNAL    -99

/**
 * Short static English text for a status code ("invalid argument", ...); an unknown code gives
 * "unknown status". Never NULL. Thread-safe. @since 0.1
 */
PROTOOD_API const char *protood_status_string(protood_status status);

/**
 * Detail of the last failure on the calling thread, e.g.
 * "protood_npy_read_f32: path 'x.npy': truncated data (expected 4096 bytes, found 100)".
 * "" if no call on this thread has failed yet. A successful call does not clear it.
 * The text stays valid until the next failing call on the same thread. @since 0.1
 */
PROTOOD_API const char *protood_last_error(void);

/** Run-time version: major*10000 + minor*100 + patch (compare with PROTOOD_VERSION_NUMBER). @since 0.1 */
PROTOOD_API uint32_t protood_version_number(void);
/** Run-time version as "major.minor.patch". Static, never NULL. @since 0.1 */
PROTOOD_API const char *protood_version_string(void);
/**
 * The ABI number of the loaded library, equal to its SONAME number. A binding or a program
 * loaded against a different build checks protood_abi_version() == PROTOOD_ABI_VERSION. @since 0.1
 */
PROTOOD_API uint32_t protood_abi_version(void);
/**
 * How this library was built, as "key=value" pairs joined by ';', e.g.
 * "version=0.1.0;abi=0;blas=openblas 0.3.21;openmp=1". Static, never NULL. @since 0.1
 */
PROTOOD_API const char *protood_build_info(void);

/**
 * Threads for the library's parallel loops (OpenMP) and for the BLAS under them, n >= 1.
 * Without this call both follow their usual environment variables (OMP_NUM_THREADS,
 * OPENBLAS_NUM_THREADS, BLIS_NUM_THREADS). The BLAS setting is process-wide, and OpenMP's applies
 * to the parallel regions started by the calling thread: call it once at start-up, not while
 * other library calls are running. Errors: INVALID_ARG (n < 1). @since 0.1
 */
PROTOOD_API protood_status protood_set_threads(int32_t n);

/* ------------------------------------------------------------------------------------------ */
/* Prototype bank (mixture of von Mises-Fisher prototypes)                                     */
/* ------------------------------------------------------------------------------------------ */
/*
 * A bank holds P = n_classes x protos_per_class (K) prototypes of dimension D, class-major
 * (row c*K + k belongs to class c), every row at unit norm, and the parameters of the training
 * steps. CIDER uses K = 1; PALM a mixture of K > 1. Functions taking a const bank may run on the
 * same bank from several threads at once; the others need exclusive access.
 */
typedef struct protood_bank protood_bank;

/**
 * New bank with the default parameters of SPEC.md and prototypes initialised as
 * protood_bank_init_random(bank, PROTOOD_INIT_POSITIVE, 0) would. n_classes, protos_per_class and
 * dim >= 1. Free with protood_bank_free. Errors: INVALID_ARG, SHAPE (P x D overflows), NOMEM.
 * @since 0.1
 */
PROTOOD_API protood_status protood_bank_create(protood_bank **out, int64_t n_classes,
                                               int64_t protos_per_class, int64_t dim);
/** Free a bank; NULL is a no-op. @since 0.1 */
PROTOOD_API void protood_bank_free(protood_bank *bank);
/** Independent deep copy of `src` (prototypes and parameters). Errors: INVALID_ARG, NOMEM. @since 0.1 */
PROTOOD_API protood_status protood_bank_clone(protood_bank **out, const protood_bank *src);
/** Shape of the bank; any output may be NULL. Errors: INVALID_ARG. @since 0.1 */
PROTOOD_API protood_status protood_bank_shape(const protood_bank *bank, int64_t *n_classes,
                                              int64_t *protos_per_class, int64_t *dim);

/**
 * Set a parameter by key. A value outside the key's range (below), NaN or Inf, or a fractional
 * value for an integer key is E_INVALID_ARG and leaves the old value. Needs exclusive access.
 * @since 0.1
 */
PROTOOD_API protood_status protood_bank_set_param(protood_bank *bank, int32_t key, double value);
/** Read a parameter by key. Errors: INVALID_ARG (NULL, unknown key). @since 0.1 */
PROTOOD_API protood_status protood_bank_get_param(const protood_bank *bank, int32_t key,
                                                  double *value);

/* keys                                  range       default */
#define PROTOOD_BANK_MOMENTUM             1  /* [0, 1)      0.999 (CIDER users set 0.5) */
#define PROTOOD_BANK_TEMPERATURE          2  /* > 0         0.1   */
#define PROTOOD_BANK_SINKHORN_EPSILON     3  /* > 0         0.05  */
#define PROTOOD_BANK_SINKHORN_ITERS       4  /* >= 1        3     (integer, <= 1e6) */
#define PROTOOD_BANK_TOPK                 5  /* >= 0        5 (clamped to K; 0 = all; integer) */
#define PROTOOD_BANK_LAMBDA_PCON          6  /* >= 0        1.0   */
#define PROTOOD_BANK_PCON_TEMPERATURE     7  /* > 0         0.5   */
#define PROTOOD_BANK_COMP_WEIGHT          8  /* >= 0        1.0   (CIDER w) */
#define PROTOOD_BANK_DIS_BASE_TEMPERATURE 9  /* > 0         0.1   (CIDER) */
#define PROTOOD_BANK_COMP_BASE_TEMPERATURE 10 /* > 0        0.07  (CIDER) */

#define PROTOOD_INIT_SPHERE   1   /* uniform random directions: normalised Gaussian entries */
#define PROTOOD_INIT_POSITIVE 2   /* uniform [0,1) entries then normalised: the PALM reference */

/**
 * Re-draw every prototype from `seed`. The generator is xoshiro256** seeded by splitmix64;
 * POSITIVE draws float32 uniforms from the top 24 bits, SPHERE standard normals by Marsaglia's
 * polar method with a libm-free logarithm; rows are filled in order (row 0 first, entries left to
 * right) and normalised in double. The same seed gives the same prototypes on every IEEE-754
 * platform. Errors: INVALID_ARG (NULL bank, unknown scheme). @since 0.1
 */
PROTOOD_API protood_status protood_bank_init_random(protood_bank *bank, int32_t scheme,
                                                    uint64_t seed);

/**
 * Initialise the prototypes from `n` feature rows `x` (n x D, raw: every row is scaled to unit
 * norm first, whatever its magnitude) with their class `labels` (n values in [0, n_classes)). Parameters are not changed.
 *
 * K = 1 (the CIDER reference): the prototype of class c is n2 of the mean of its normalised rows;
 * `seed` is not used.
 *
 * K > 1: per class, spherical k-means++ on its normalised rows. Seeding: the first centre is a row
 * drawn uniformly; each further centre is a row drawn with probability proportional to its squared
 * Euclidean distance (2 - 2 cos, computed in double) to the nearest centre chosen so far. Then Lloyd
 * iterations: each row goes to the centre of highest cosine similarity (the lowest index on ties),
 * each centre becomes n2 of the sum of its rows (an empty cluster keeps its centre), until no
 * assignment changes or after 100 iterations. Prototype c*K + k is the k-th centre in the order
 * the seeding chose them. One generator (that of protood_bank_init_random) seeded with `seed`
 * serves the classes in order 0, 1, ...: the same inputs and seed give the same prototypes on every
 * run. (Across BLAS libraries the similarities may round differently, which can matter only for a
 * row equally close to two centres.)
 *
 * Classes short of data keep what the bank held, so call protood_bank_init_random (or
 * protood_bank_set_prototypes) first to choose what fills those slots:
 *   - a class with no rows keeps all K of its current prototypes;
 *   - a class with only m < K distinct normalised rows (in particular one with fewer than K rows)
 *     gets m centres in slots 0..m-1 and keeps its current prototypes in slots m..K-1;
 *   - with K = 1, a class whose normalised rows sum to zero (a row and its negation) keeps its
 *     current prototype.
 *
 * Errors (the bank is unchanged): INVALID_ARG (bank, x or labels NULL; n < 1), NONFINITE (NaN or
 * Inf in x, or an all-zero row), LABEL, SHAPE (n x D overflows; with K > 1, n, D or K beyond the
 * BLAS's int range), NOMEM. Needs exclusive access to the bank. @since 0.1
 */
PROTOOD_API protood_status protood_bank_init_from_features(protood_bank *bank, int64_t n, const float *x,
                                                           const int32_t *labels, uint64_t seed);

/** Copy the P x D prototypes (class-major) into `out`. Errors: INVALID_ARG. @since 0.1 */
PROTOOD_API protood_status protood_bank_get_prototypes(const protood_bank *bank, float *out);
/**
 * Replace the prototypes with `in` (P x D), each row normalised to unit norm. Rows with NaN/Inf or
 * all zeros are E_NONFINITE (the bank keeps its prototypes). @since 0.1
 */
PROTOOD_API protood_status protood_bank_set_prototypes(protood_bank *bank, const float *in);

/*
 * Persistence. The format (docs/bank-format.md) is versioned, explicitly little-endian and ends
 * with a CRC-32 of everything before it; it holds the shape, all parameters and the prototypes
 * (bit-exact), not the scratch space. A file and a buffer of the same bank are the same bytes.
 * Reading rejects anything malformed with PROTOOD_E_FORMAT: wrong magic, a format version other
 * than 1, a non-zero reserved field, a shape < 1 or one that overflows, a size other than the one
 * the shape implies (truncation, trailing bytes), a checksum mismatch, a parameter outside its
 * range, and a prototype that is not finite or not of unit norm (to within 1e-3).
 */

/**
 * Write `bank` to `path` atomically: a temporary file in the same directory, flushed, synced and
 * renamed over `path`; on failure the temporary file is removed and an existing file at `path` is
 * untouched. Errors: INVALID_ARG (NULL), IO, NOMEM. Thread-safe on a const bank. @since 0.1
 */
PROTOOD_API protood_status protood_bank_save(const protood_bank *bank, const char *path);
/**
 * Read a bank written by protood_bank_save into a new bank in `*out` (free with
 * protood_bank_free); `*out` is written only on success. Errors: INVALID_ARG (NULL), IO (cannot
 * open or read, not a regular file), FORMAT (see above), NOMEM. Thread-safe. @since 0.1
 */
PROTOOD_API protood_status protood_bank_load(protood_bank **out, const char *path);
/**
 * Serialise `bank` into the caller's `buf` of `capacity` bytes, in the file format; `*size_out`
 * receives the number of bytes written. With buf NULL nothing is written and `*size_out` receives
 * the size needed (capacity is ignored). size_out must not be NULL. A capacity below the size
 * needed is E_INVALID_ARG (the message gives the size) and writes nothing, neither to buf nor to
 * *size_out. Errors: INVALID_ARG, NOMEM. Thread-safe on a const bank. @since 0.1
 */
PROTOOD_API protood_status protood_bank_to_buffer(const protood_bank *bank, void *buf, size_t capacity,
                                                  size_t *size_out);
/**
 * Read a bank from `size` bytes at `buf` (as protood_bank_to_buffer wrote them) into a new bank
 * in `*out`, written only on success. `buf` is only read during the call. Errors: INVALID_ARG
 * (out or buf NULL), FORMAT (see above; also for size 0), NOMEM. Thread-safe. @since 0.1
 */
PROTOOD_API protood_status protood_bank_from_buffer(protood_bank **out, const void *buf, size_t size);

/* ------------------------------------------------------------------------------------------ */
/* Metrics (in-distribution is the positive class; SPEC.md §7)                                 */
/* ------------------------------------------------------------------------------------------ */
/*
 * s_in holds the scores of n_in in-distribution (ID) rows, s_out those of n_out out-of-distribution
 * (OOD) rows, higher = more in-distribution (what the scorers return). Each metric depends only on
 * the order of the scores and is exact for any ties: counts are integers and the result is their
 * ratio rounded once to double, equal to scikit-learn's value up to the last bits of its floating
 * point sums. Scores compare as floats: -0 and +0 tie; +Inf and -Inf are accepted as the highest
 * and lowest scores (scikit-learn rejects them; the order they define is still meaningful).
 *
 * Common errors: INVALID_ARG (n_in or n_out < 1, s_in, s_out or out NULL, an argument out of its
 * range below), NONFINITE (a NaN score, named with its index: "protood_auroc: s_in[17] = nan"),
 * SHAPE (the sort buffer of 4 (n_in + n_out + max(n_in, n_out)) bytes overflows), NOMEM. On
 * failure *out is untouched.
 *
 * Cost: O(n_in + n_out) time (radix sort of a copy) and that many 4-byte words of scratch,
 * allocated and freed by each call. No state: thread-safe, any number of calls at once.
 */
#define PROTOOD_POSITIVE_IN  1   /* AUPR-In: ID rows are the positives */
#define PROTOOD_POSITIVE_OUT 2   /* AUPR-Out: OOD rows are the positives, scores negated */

#define PROTOOD_FPR_ROC          0   /* default: sklearn roc_curve over every distinct threshold */
#define PROTOOD_FPR_KNN          1   /* KNN (Sun et al. 2022): sorted(s_in)[round(0.05 n_in)] */
#define PROTOOD_FPR_PERCENTILE   2   /* PALM's: numpy.percentile(s_in, 5) */
#define PROTOOD_FPR_OOD_POSITIVE 3   /* OpenOOD's: OOD is the positive class */

/**
 * Area under the ROC curve with ID positive: the fraction of (ID, OOD) pairs in which the ID score
 * is higher, a tied pair counting one half (Mann-Whitney U / (n_in n_out)). Equal to
 * sklearn.metrics.roc_auc_score(y, s) with y = 1 for ID rows. 1 = perfect separation, 0.5 = all
 * scores tied. Writes one double to *out. Errors: as for every metric above. Thread-safe.
 * @since 0.1
 */
PROTOOD_API protood_status protood_auroc(int64_t n_in, const float *s_in, int64_t n_out,
                                         const float *s_out, double *out);

/**
 * Average precision, step-wise as sklearn.metrics.average_precision_score (not the trapezoidal
 * area): over the distinct thresholds t, best first, the sum of (recall(t) - recall(previous t))
 * x precision(t), where a threshold admits every row scored at or above it (tied rows enter
 * together). positive = PROTOOD_POSITIVE_IN: ID rows are the positives (AUPR-In);
 * PROTOOD_POSITIVE_OUT: OOD rows are the positives and the scores are negated (AUPR-Out).
 * All scores tied gives n_pos / (n_in + n_out), perfect separation 1. Errors: as above, plus INVALID_ARG for any other `positive`.
 * Thread-safe. @since 0.1
 */
PROTOOD_API protood_status protood_aupr(int64_t n_in, const float *s_in, int64_t n_out,
                                        const float *s_out, int32_t positive, double *out);

/**
 * False-positive rate at a true-positive rate `tpr` in (0, 1] (0.95 for the usual FPR95), in one
 * of the conventions of published code (they differ on ties and on small sets). With c = 1 - tpr
 * taken digit-exact (tpr = 0.95 gives the double 0.05 of the papers' code, not 1 - 0.95 =
 * 0.050000000000000044; tpr with more than 15 decimals uses 1 - tpr):
 *  - PROTOOD_FPR_ROC (default): scan the distinct scores from the highest down, admitting each
 *    group of tied rows at once; at the first threshold where (ID rows admitted) / n_in >= tpr,
 *    the result is (OOD rows admitted) / n_out. This is fpr[argmax(tpr_curve >= tpr)] of
 *    sklearn.metrics.roc_curve(y, s, drop_intermediate=False) (the default drop_intermediate=True
 *    can give a larger value on heavily tied scores).
 *  - PROTOOD_FPR_KNN: the fraction of OOD scores strictly above sorted(s_in)[round(c n_in)], with
 *    Python's round (halves to even) of the double product; an index of n_in (tpr < 0.5 / n_in)
 *    takes the highest ID score.
 *  - PROTOOD_FPR_PERCENTILE (PALM's): the fraction of OOD scores strictly above
 *    numpy.percentile(s_in, 100 c) (linear interpolation), computed and compared as PALM's
 *    `np.sum(novel > np.percentile(known, 5))` does on float32 arrays with numpy 1.24: the
 *    neighbours' difference rounded to float32, the threshold rounded to float32 for the
 *    comparison. At an infinite neighbour the threshold is that infinity; a percentile falling
 *    between -Inf and +Inf scores is E_NONFINITE.
 *  - PROTOOD_FPR_OOD_POSITIVE (OpenOOD's): OOD positive, scores negated: scan the distinct scores
 *    from the lowest up; at the first threshold where (OOD rows at or below it) / n_out >= tpr,
 *    the result is (ID rows at or below it) / n_in.
 * Errors: as above, plus INVALID_ARG for tpr outside (0, 1] or NaN and for an unknown convention,
 * NONFINITE for the percentile case above. Thread-safe. @since 0.1
 */
PROTOOD_API protood_status protood_fpr_at_tpr(int64_t n_in, const float *s_in, int64_t n_out,
                                              const float *s_out, double tpr, int32_t convention,
                                              double *out);

/* ------------------------------------------------------------------------------------------ */
/* Training steps and building blocks                                                          */
/* ------------------------------------------------------------------------------------------ */
/*
 * A step takes the caller's raw feature rows h (n x dim, e.g. the projector output of a network),
 * normalises them itself (z = h / max(||h||, 1e-12)), does the whole reference step of SPEC.md §3
 * (PALM) or §4 (CIDER) with the bank's parameters, moves the bank's prototypes, and writes the
 * losses and the gradient of the total loss with respect to h, to be backpropagated into the
 * network by the caller. The gradient includes the chain through the normalisation of h; for rows
 * that already have unit norm it equals (I - z z^T) dL/dz. Every path that the authors' autograd
 * follows is included, notably the one through the EMA update of the prototypes.
 *
 * Common to both steps:
 *   - losses: 3 doubles or NULL; grad: n x dim float32, overwritten (not accumulated), or NULL.
 *     With both NULL the step only moves the bank (the losses and gradient are not computed).
 *   - Errors, all checked before anything is touched: INVALID_ARG (bank or h NULL, n < 1),
 *     NONFINITE (NaN/Inf in h, or an all-zero row of h, which cannot be normalised), LABEL (a label
 *     outside [0, n_classes)), SHAPE (n x dim or n x P overflows, or exceeds the BLAS int range),
 *     NOMEM (the workspace could not grow). On any error the bank is left bit for bit as it was
 *     and nothing is written to losses or grad.
 *   - Scratch lives in the bank and grows on demand: after the first call at a given batch size a
 *     step allocates nothing.
 *   - Needs exclusive access to the bank (it moves the prototypes and uses the bank's scratch).
 *     The matrix products run on the BLAS's threads (OPENBLAS_NUM_THREADS, or OMP_NUM_THREADS
 *     for BLIS); everything else runs on the calling thread.
 */

/**
 * One PALM training step (SPEC.md §3) on a batch of n rows.
 *
 * Parameters from the bank: MOMENTUM m, TEMPERATURE tau, SINKHORN_EPSILON, SINKHORN_ITERS, TOPK
 * (0 = all; clamped to K, or to P when unsupervised), LAMBDA_PCON, PCON_TEMPERATURE.
 *   - labels: n class indices in [0, n_classes), or NULL for unsupervised PALM (every prototype of
 *     every class is a candidate for every row, top-k clamped to P, no positive pairs in the
 *     prototype-contrastive loss).
 *   - losses (may be NULL): [0] = L_mle + lambda * L_pcon, [1] = L_mle, [2] = L_pcon (0 when
 *     lambda = 0, as the reference reports it; 0 for a bank of a single prototype, which has no
 *     other prototype to contrast with).
 *   - grad (may be NULL): n x dim, dL/dh.
 * The bank's prototypes become the EMA-updated P' (a prototype no row was assigned to keeps its
 * row exactly; so does one whose update m p + (1 - m) u cancels to a norm <= 1e-12, possible
 * only with MOMENTUM <= 0.5 and rows opposite to it, e.g. dim = 1: the reference would leave a
 * zero vector there, and a kept prototype carries no gradient). Both Sinkhorn passes are protood_sinkhorn's (any epsilon works, small ones in the
 * log domain); Sinkhorn couples the rows of a batch, so results depend on the whole batch.
 * Errors: see the section comment above. Exclusive access to the bank. @since 0.1
 */
PROTOOD_API protood_status protood_palm_step(protood_bank *bank, int64_t n, const float *h,
                                             const int32_t *labels, double *losses, float *grad);

/**
 * One CIDER training step (SPEC.md §4) on a batch of n rows; the bank must have one prototype per
 * class (protos_per_class = 1), else E_STATE.
 *
 * Parameters from the bank: MOMENTUM m (CIDER's default is 0.5: set it, the bank's default is
 * PALM's 0.999), TEMPERATURE tau, COMP_WEIGHT w, DIS_BASE_TEMPERATURE, COMP_BASE_TEMPERATURE.
 *   - labels: n class indices in [0, n_classes), required (NULL is E_INVALID_ARG).
 *   - losses (may be NULL): [0] = w * L_comp + L_dis, [1] = L_comp, [2] = L_dis (0 for a bank of a
 *     single class, which has nothing to disperse from).
 *   - grad (may be NULL): n x dim, dL/dh, including the path of L_dis back through the sequential
 *     prototype updates of the batch's rows.
 * The rows update their class prototype one after the other in row order, so the order of the
 * batch matters, as in the reference. An update that cancels (m p + (1 - m) z of norm <= 1e-12:
 * m <= 0.5 and z = -p, e.g. any row opposite to its prototype when dim = 1) is skipped, where the
 * reference would leave a zero prototype; the row then gets no gradient through it. Errors: see the section comment above, plus STATE.
 * Exclusive access to the bank. @since 0.1
 */
PROTOOD_API protood_status protood_cider_step(protood_bank *bank, int64_t n, const float *h,
                                              const int32_t *labels, double *losses, float *grad);

/**
 * Sinkhorn-Knopp soft assignment of SPEC.md §2 on a given score matrix, as the reference code
 * computes it: Q = exp(scores/epsilon) / sum, then `iters` times "every column to 1/p, then every
 * row to 1/n", each through F.normalize(p=1), i.e. dividing by max(sum, 1e-12); returned times n.
 * Where the reference's float64 exp(scores/epsilon) is finite (max(scores)/epsilon <= 709.78) the
 * result is the reference's, floor included: every row of assign_out sums to 1 except a row whose
 * whole mass fell below the 1e-12 floor before the last row step (a row that every column finds
 * more than e^-27 less likely than its best row), which the reference leaves short of 1, and a
 * column every row ignores keeps less than 1/p. Beyond that (e.g. epsilon = 0.001 on cosines) the
 * reference overflows, and the result is the exact scale-free Sinkhorn without the floor: every
 * row sums to 1.
 *
 * scores: n x p float32, finite (any range: typically cosine similarities). epsilon > 0, finite.
 * iters >= 1. assign_out: n x p float32. Equal to the reference's direct exponentiation wherever
 * that is finite, and finite and correct where it overflows (small epsilon, large scores): large
 * spreads are handled in the log domain. Entries below the float32 range come out as 0.
 * Allocates its scratch (about 12 bytes per entry) per call.
 * Errors: INVALID_ARG (NULL, n or p < 1, epsilon or iters out of range), NONFINITE (NaN/Inf in
 * scores), SHAPE (n x p overflows), NOMEM. Thread-safe (no shared state). @since 0.1
 */
PROTOOD_API protood_status protood_sinkhorn(int64_t n, int64_t p, const float *scores, double epsilon,
                                            int32_t iters, float *assign_out);

/**
 * The PALM loss weights W (SPEC.md §3 step 7) of a batch against the bank as it is, without the
 * EMA update: z = n2(h), Q = sinkhorn(z P^T) over all P prototypes with the bank's epsilon and
 * iterations, the support of row i = the top-k entries of Q_i among its class's K prototypes
 * (labels NULL: among all P, top-k clamped to P; TOPK 0 = all of them; exact ties go to the lower
 * index), and
 * W_ij = Q_ij / max(sum of Q_i over the support, 1e-12) on the support, 0 elsewhere. Each row sums
 * to 1 unless its support holds less than 1e-12 of the row's mass. These are the soft mixture
 * responsibilities with which a step would weight the MLE loss if the bank did not move, e.g. to
 * inspect which prototype of its class each row is assigned to. As with every Sinkhorn
 * assignment, a row's weights depend on the other rows of the batch.
 *
 * weights_out: n x P float32 (P = n_classes x protos_per_class, class-major columns).
 * Allocates its scratch per call. Errors: INVALID_ARG (bank, h or weights_out NULL, n < 1),
 * NONFINITE, LABEL, SHAPE, NOMEM as for protood_palm_step. Does not modify the bank: may run on
 * the same bank from several threads at once. @since 0.1
 */
PROTOOD_API protood_status protood_palm_assign(const protood_bank *bank, int64_t n, const float *h,
                                               const int32_t *labels, float *weights_out);

/* ------------------------------------------------------------------------------------------ */
/* Feature files (NumPy .npy)                                                                  */
/* ------------------------------------------------------------------------------------------ */
/*
 * Reading accepts format versions 1.0, 2.0 and 3.0, dtypes float32/float64/float16/int32/int64
 * in either byte order (big-endian is converted), C or Fortran order (Fortran is converted to
 * row-major), 1-D arrays (reported as rows = n, cols = 1) and 2-D arrays. Anything else (object
 * or structured arrays, other dtypes, 0-D or 3-D shapes, truncated or trailing data, a header
 * that does not parse) is PROTOOD_E_FORMAT; a file that cannot be opened or read is PROTOOD_E_IO.
 * Writes are atomic: the data go to a temporary file in the same directory, which is flushed,
 * synced and renamed over `path`; on failure the temporary file is removed and any existing file
 * at `path` is untouched. All functions are thread-safe (they share no state).
 */
#define PROTOOD_DTYPE_F32 1
#define PROTOOD_DTYPE_F64 2
#define PROTOOD_DTYPE_F16 3
#define PROTOOD_DTYPE_I32 4
#define PROTOOD_DTYPE_I64 5

/**
 * Shape and element type of a .npy file without reading its data. Any of dtype, rows, cols may
 * be NULL. The file's size is checked against the header, so a truncated file fails here.
 * Errors: INVALID_ARG (path NULL), IO, FORMAT. @since 0.1
 */
PROTOOD_API protood_status protood_npy_info(const char *path, int32_t *dtype, int64_t *rows,
                                            int64_t *cols);

/**
 * Read a whole .npy file of any supported dtype into `out` (rows x cols float32, row-major),
 * converting. `rows`/`cols` must be what protood_npy_info reports (E_SHAPE otherwise).
 * A float64 value beyond the float32 range is E_FORMAT (never silently made infinite); NaN and
 * infinities in the file are kept as they are. Integers convert to the nearest float32.
 * Errors: INVALID_ARG, SHAPE, IO, FORMAT, NOMEM. @since 0.1
 */
PROTOOD_API protood_status protood_npy_read_f32(const char *path, int64_t rows, int64_t cols,
                                                float *out);

/**
 * Like protood_npy_read_f32 but into float64 (exact for every supported dtype except int64
 * beyond 2^53, which rounds). @since 0.1
 */
PROTOOD_API protood_status protood_npy_read_f64(const char *path, int64_t rows, int64_t cols,
                                                double *out);

/**
 * Read `n` integer labels from a 1-D file of n elements or a 2-D file of n x 1. int32 and int64
 * files are accepted; an int64 value outside the int32 range is E_FORMAT. Floating-point files are
 * E_FORMAT (labels are never guessed from floats). Errors: INVALID_ARG, SHAPE, IO, FORMAT, NOMEM.
 * @since 0.1
 */
PROTOOD_API protood_status protood_npy_read_i32(const char *path, int64_t n, int32_t *out);

/**
 * Write a rows x cols float32 matrix as a 2-D .npy file (format 1.0, '<f4', C order), atomically.
 * rows >= 0, cols >= 1; data may be NULL only when rows == 0. Errors: INVALID_ARG, SHAPE
 * (size overflow), IO. @since 0.1
 */
PROTOOD_API protood_status protood_npy_write_f32(const char *path, int64_t rows, int64_t cols,
                                                 const float *data);

/** Write n float32 values as a 1-D .npy file (shape (n,)), atomically; n >= 0. @since 0.1 */
PROTOOD_API protood_status protood_npy_write_f32_vector(const char *path, int64_t n,
                                                        const float *data);

/** Write n int32 values as a 1-D .npy file ('<i4', shape (n,)), atomically; n >= 0. @since 0.1 */
PROTOOD_API protood_status protood_npy_write_i32(const char *path, int64_t n, const int32_t *data);

/* ------------------------------------------------------------------------------------------ */
/* Scorers (higher score = more in-distribution)                                               */
/* ------------------------------------------------------------------------------------------ */
/*
 * A scorer is fitted once on in-distribution training features (plan once) and then scores any
 * number of query rows (execute many); SPEC.md §6 gives the formulas. By default every input row,
 * training and query alike, is first L2-normalised (x / |x|, in double: every non-zero row gets
 * unit norm whatever its magnitude, 1e-30 or 1e30 alike); all-zero rows cannot be normalised and
 * are rejected as E_NONFINITE. With PROTOOD_SCORER_NORMALIZE = 0 rows are used as given (all-zero
 * rows allowed).
 *
 *   KNN          score = -|q - x_(k)|^2, the squared distance to the k-th nearest training row
 *                (exact search; not the mean over the k). k (PROTOOD_SCORER_K, default 50) must
 *                not exceed the number of training rows: fit rejects k > n, and set_param rejects
 *                such a k on a fitted scorer, so scoring never meets it.
 *   MAHALANOBIS  score = max_c -(q - mu_c)^T S+ (q - mu_c): class means mu_c, tied covariance S
 *                (1/N of the class-centred scatter, float64), S+ its symmetric pseudo-inverse as
 *                scipy.linalg.pinvh computes it (eigenvalues |l| <= D * 2.22e-16 * max|l|
 *                dropped). A rank-deficient covariance is fine (the pseudo-inverse ignores the
 *                missing directions); a covariance that is entirely zero (every row equal to its
 *                class mean) is rejected by fit with E_INVALID_ARG, as is a class without rows.
 *   SSD          a single Gaussian on standardised features t = (x - mean) / (std + 1e-10):
 *                score = -t^T St+ t with St the population covariance of the training t. A
 *                feature with zero spread is ignored; all rows identical is E_INVALID_ARG.
 *   PROTOTYPE    score = max_j cos(q, p_j) over the prototypes of a bank (protood_scorer_fit_bank)
 *                or over given rows (protood_scorer_fit).
 *
 * Precision: the GEMMs run in float32 and each final value is formed in double; scores agree with
 * a float64 reference to about 1e-6 relative (SPEC.md §8 asks 1e-4). A KNN score is exactly the
 * k-th smallest of the squared distances computed in double between the normalised (float32)
 * rows: the GEMM only ranks, and near-ties at rank k are settled in double, so KNN scores are
 * the same bits whatever the batching, thread count or BLAS. The other kinds give the same bits
 * for the same batching: protood_scorer_score_stream equals protood_scorer_score, and a loaded
 * scorer equals the saved one.
 *
 * Threads: protood_scorer_score, _score_stream, _get_param, _save and _to_buffer take a const
 * scorer and may run on the same scorer from any number of threads at once. Create, fit,
 * set_param and free need exclusive access. Scoring parallelises over tiles of queries with
 * OpenMP (OMP_NUM_THREADS bounds it) and runs the BLAS single-threaded inside those tiles; with
 * OpenBLAS's pthreads build this sets OpenBLAS's global thread count to 1 for the duration of the
 * parallel part and restores it after (docs/conventions.md).
 */
typedef struct protood_scorer protood_scorer;

#define PROTOOD_SCORER_KNN         1   /* -squared distance to the k-th neighbour */
#define PROTOOD_SCORER_MAHALANOBIS 2   /* class-conditional, tied covariance */
#define PROTOOD_SCORER_SSD         3   /* single Gaussian on standardised features */
#define PROTOOD_SCORER_PROTOTYPE   4   /* max cosine to a bank's prototypes */

/* keys                          range           default */
#define PROTOOD_SCORER_K         1   /* integer >= 1     50: KNN's k (ignored by the other kinds) */
#define PROTOOD_SCORER_NORMALIZE 2   /* 0 or 1           1: L2-normalise every input row first */

/**
 * New unfitted scorer of `kind` (PROTOOD_SCORER_*) for rows of `dim` features (1 <= dim <= 2^31-1),
 * with the default parameters. Free with protood_scorer_free.
 * Errors: INVALID_ARG (out NULL, unknown kind, dim < 1), SHAPE (dim too large), NOMEM. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_create(protood_scorer **out, int32_t kind, int64_t dim);

/** Free a scorer and its fitted state; NULL is a no-op. @since 0.1 */
PROTOOD_API void protood_scorer_free(protood_scorer *scorer);

/**
 * Set a parameter by key (table above). Errors: INVALID_ARG (NULL scorer, unknown key, value out
 * of range or fractional, NaN; K larger than the training rows of a fitted KNN scorer), STATE
 * (changing NORMALIZE after fit: the fitted state was built from rows treated the other way;
 * refit instead). The old value stays on failure. Needs exclusive access. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_set_param(protood_scorer *scorer, int32_t key, double value);

/** Read a parameter by key. Errors: INVALID_ARG (NULL, unknown key). Thread-safe. @since 0.1 */
PROTOOD_API protood_status protood_scorer_get_param(const protood_scorer *scorer, int32_t key,
                                                    double *value);

/**
 * What a scorer is: its kind (PROTOOD_SCORER_*), its dimension, and whether it has been fitted
 * (1) or not (0) — e.g. after protood_scorer_load. Any output may be NULL. Errors: INVALID_ARG
 * (NULL scorer). Thread-safe. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_info(const protood_scorer *scorer, int32_t *kind, int64_t *dim,
                                               int32_t *fitted);

/**
 * Fit the scorer to n >= 1 training rows `x` (n x dim, row-major).
 * MAHALANOBIS needs `labels` (n values in [0, n_classes)) and n_classes >= 1, every class with at
 * least one row (so n_classes <= n); the other kinds ignore labels and n_classes (pass NULL, 0).
 * KNN needs n >= k and keeps a normalised copy of x (n x dim floats); PROTOTYPE takes the rows of
 * x as its prototypes; MAHALANOBIS and SSD keep only means and a dim x rank projection.
 * A refit replaces the fitted state only if it succeeds; on failure the scorer is as before.
 * Errors: INVALID_ARG (NULL scorer or x or labels, n < 1, k > n, n_classes out of range, a class
 * without rows, a zero covariance or, with NORMALIZE = 0, one too small for float32 projections:
 * raw features spread by less than about 1e-31), NONFINITE (NaN/Inf, or an all-zero row when normalising),
 * LABEL, SHAPE (size overflow), NOMEM, INTERNAL (LAPACK failure). Needs exclusive access.
 * @since 0.1
 */
PROTOOD_API protood_status protood_scorer_fit(protood_scorer *scorer, int64_t n, const float *x,
                                              const int32_t *labels, int64_t n_classes);

/**
 * Fit a PROTOTYPE scorer to the P x D prototypes of `bank` (copied: the bank may change or be
 * freed afterwards). Errors: INVALID_ARG (NULL), STATE (the scorer is not of kind PROTOTYPE),
 * SHAPE (bank dim != scorer dim), NOMEM. On failure the scorer is as before. Needs exclusive
 * access to the scorer; the bank is only read. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_fit_bank(protood_scorer *scorer, const protood_bank *bank);

/**
 * Score m >= 1 query rows `q` (m x dim) into scores_out (m floats; higher = more
 * in-distribution). Errors: INVALID_ARG (NULL, m < 1), STATE (not fitted), NONFINITE, SHAPE (size
 * overflow), NOMEM; scores_out is untouched on failure. Thread-safe on a const scorer. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_score(const protood_scorer *scorer, int64_t m, const float *q,
                                                float *scores_out);

/**
 * Serialise the scorer (fitted or not) into `buf`: the bytes protood_scorer_save writes
 * (docs/scorer-format.md). With buf NULL only *size_out is set (capacity ignored). Errors:
 * INVALID_ARG (NULL scorer or size_out, capacity smaller than the size), NOMEM. Thread-safe.
 * @since 0.1
 */
PROTOOD_API protood_status protood_scorer_to_buffer(const protood_scorer *scorer, void *buf, size_t capacity,
                                                    size_t *size_out);

/**
 * New scorer from `size` bytes written by protood_scorer_to_buffer or _save. Errors: INVALID_ARG
 * (NULL), FORMAT (bad magic, unsupported version, checksum mismatch, truncated, trailing or
 * inconsistent data), NOMEM. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_from_buffer(protood_scorer **out, const void *buf, size_t size);

/**
 * Save the scorer to `path`: versioned, CRC-32-checked, little-endian on every host
 * (docs/scorer-format.md), written atomically (a temporary file, fsync, rename): a reader never
 * sees a half-written file and a failed save leaves an existing file intact. Parameters are
 * saved with the fitted state; a loaded scorer gives the bits of the saved one.
 * Errors: INVALID_ARG (NULL), IO, NOMEM. Thread-safe. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_save(const protood_scorer *scorer, const char *path);

/**
 * Load a scorer saved by protood_scorer_save. Errors: INVALID_ARG (NULL), IO (cannot open or
 * read), FORMAT (as protood_scorer_from_buffer), NOMEM. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_load(protood_scorer **out, const char *path);

/* ------------------------------------------------------------------------------------------ */
/* Feature callback: embedding extraction stays with the caller                                */
/* ------------------------------------------------------------------------------------------ */
/*
 * Instead of holding all features in memory, the library pulls rows from the caller (a network
 * forward pass, a file reader, a database cursor). The callback is called synchronously on the
 * calling thread, in order: rows [0, count), then [count, 2 count), ..., each row exactly once,
 * with count == batch except for the last call. It writes `count` rows (count x dim floats) to
 * rows_out and, when labels_out is not NULL (MAHALANOBIS fits only), `count` labels; it returns
 * 0 on success. Any other value aborts the call with PROTOOD_E_CALLBACK (the value appears in
 * protood_last_error()) and leaves the scorer and the outputs exactly as they were. Rows from the
 * callback are validated like direct input (E_NONFINITE, E_LABEL, with the absolute row index).
 * Results equal the in-memory calls bit for bit, whatever the batch size.
 */
typedef int32_t (*protood_feature_fn)(void *user, int64_t first, int64_t count, float *rows_out,
                                      int32_t *labels_out);

/**
 * protood_scorer_fit on n rows pulled in batches of `batch` (>= 1; larger than n means one call).
 * KNN and PROTOTYPE keep the rows (n x dim floats); MAHALANOBIS and SSD accumulate float64
 * moments in one pass and hold only one batch at a time. n_classes as for protood_scorer_fit.
 * Errors: those of protood_scorer_fit, INVALID_ARG (fn NULL, batch < 1), CALLBACK, STATE (a
 * reducer is attached: streaming fits are single-process). Needs exclusive access. @since 0.1
 */
PROTOOD_API protood_status protood_scorer_fit_stream(protood_scorer *scorer, int64_t n, int64_t batch,
                                                     protood_feature_fn fn, void *user, int64_t n_classes);

/**
 * protood_scorer_score on m rows pulled in batches of `batch` (>= 1; labels_out is NULL), scores
 * into scores_out (m floats, written only when every batch succeeded). Holds about one batch of
 * rows at a time. Errors: those of protood_scorer_score, INVALID_ARG (fn NULL, batch < 1),
 * CALLBACK. Thread-safe on a const scorer (each call needs its own callback state). @since 0.1
 */
PROTOOD_API protood_status protood_scorer_score_stream(const protood_scorer *scorer, int64_t m, int64_t batch,
                                                       protood_feature_fn fn, void *user, float *scores_out);

/* ------------------------------------------------------------------------------------------ */
/* Several processes: data-parallel steps and sharded scorers (docs/distributed.md)             */
/* ------------------------------------------------------------------------------------------ */
/*
 * The library does no communication of its own: the caller supplies a sum-allreduce (typically
 * MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_DOUBLE, MPI_SUM, comm), or torch.distributed's
 * all_reduce on a float64 tensor) and attaches it to a bank or a scorer together with this
 * process's rank and the number of participants. From then on:
 *   - protood_palm_step on R ranks, each passing its own n_r rows, performs the step of the global
 *     batch (the ranks' rows concatenated in rank order): every rank ends with the same bank and
 *     the same losses, and receives the gradient of its own rows. Only O(P x D + iters x P)
 *     numbers per step are exchanged (Sinkhorn's column sums, A's column sums, U = A^T z, the loss
 *     sums), never the features.
 *   - protood_cider_step does the same; CIDER's sequential EMA depends on the global row order, so
 *     the rows themselves are gathered (N x (dim + 1) numbers per step).
 *   - protood_scorer_fit fits one scorer from the union of the ranks' rows: MAHALANOBIS and SSD
 *     from summed moments (every rank ends with the same model), KNN keeps each rank's rows as its
 *     shard (k may exceed a shard, not the union). protood_scorer_score, with every rank passing
 *     the same queries, returns the score against the union on every rank (KNN exchanges each
 *     rank's k nearest distances per query). PROTOTYPE and protood_scorer_fit_bank are unaffected.
 * Every rank must make the same sequence of calls on handles of equal shape and parameters (banks
 * with equal prototypes: initialise them with the same seed), each rank with n >= 1 rows. A rank
 * whose own arguments are invalid still takes part in one exchange, so that every rank returns
 * (the others with E_STATE: "the call failed on 1 other rank(s)"). protood_palm_assign stays local
 * to the calling rank's rows. A reducer that returns
 * non-zero makes the call return PROTOOD_E_CALLBACK and leaves the handle unchanged on that rank;
 * what the other ranks then see is the communication library's business (MPI usually aborts).
 * The reducer is called synchronously on the calling thread, never concurrently for one handle.
 * It is not copied by clone, save or to_buffer.
 */

/**
 * Sum-allreduce: replace buf[0 .. count) by its element-wise sum over every participant (each
 * calls with the same count, count >= 1). Return 0 on success, anything else on failure.
 * @since 0.2
 */
typedef int32_t (*protood_allreduce_fn)(void *user, double *buf, int64_t count);

/**
 * Attach a reducer to a bank for the training steps: this process is `rank` of `size`
 * participants (0 <= rank < size). fn NULL detaches it (then rank and size must be 0 and 1):
 * single process again. Steps on a bank with a reducer of size 1 equal those without one.
 * Errors: INVALID_ARG (bank NULL, rank or size out of range). Exclusive access to the bank.
 * @since 0.2
 */
PROTOOD_API protood_status protood_bank_set_reducer(protood_bank *bank, protood_allreduce_fn fn, void *user,
                                                    int32_t rank, int32_t size);

/**
 * Attach a reducer to a scorer (see the section comment): protood_scorer_fit then fits from the
 * union of the ranks' rows and protood_scorer_score returns the global score. fn NULL detaches
 * it (rank 0, size 1). A KNN scorer fitted with a reducer holds only its rank's shard: scoring it
 * without that reducer (or a reducer of another size) is E_STATE, and so are
 * protood_scorer_score_stream, _save and _to_buffer on it; protood_scorer_set_param(K) on it is
 * checked against this rank's shard (refit to raise k beyond it). Errors: INVALID_ARG (scorer NULL,
 * rank or size out of range).
 * Exclusive access to the scorer. @since 0.2
 */
PROTOOD_API protood_status protood_scorer_set_reducer(protood_scorer *scorer, protood_allreduce_fn fn,
                                                      void *user, int32_t rank, int32_t size);

#ifdef __cplusplus
}
#endif

#endif /* PROTOOD_H */
