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

/** Copy the P x D prototypes (class-major) into `out`. Errors: INVALID_ARG. @since 0.1 */
PROTOOD_API protood_status protood_bank_get_prototypes(const protood_bank *bank, float *out);
/**
 * Replace the prototypes with `in` (P x D), each row normalised to unit norm. Rows with NaN/Inf or
 * all zeros are E_NONFINITE (the bank keeps its prototypes). @since 0.1
 */
PROTOOD_API protood_status protood_bank_set_prototypes(protood_bank *bank, const float *in);

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
 * row exactly). Both Sinkhorn passes are protood_sinkhorn's (any epsilon works, small ones in the
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
 * batch matters, as in the reference. Errors: see the section comment above, plus STATE.
 * Exclusive access to the bank. @since 0.1
 */
PROTOOD_API protood_status protood_cider_step(protood_bank *bank, int64_t n, const float *h,
                                              const int32_t *labels, double *losses, float *grad);

/**
 * Sinkhorn-Knopp soft assignment of SPEC.md §2 on a given score matrix, as the reference code
 * computes it: Q = exp(scores/epsilon) / sum, then `iters` times "every column to 1/p, then every
 * row to 1/n", each through F.normalize(p=1), i.e. dividing by max(sum, 1e-12); returned times n.
 * Every row of assign_out sums to 1, except a row whose whole mass fell below that 1e-12 floor
 * before the last row step (at a very small epsilon, a row that every column finds more than
 * e^-27 less likely than its best row): the reference leaves such a row short of 1, and so does
 * this function. Equally, a column every row ignores keeps less than 1/p.
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

#ifdef __cplusplus
}
#endif

#endif /* PROTOOD_H */
