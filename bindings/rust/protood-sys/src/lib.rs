//! Raw FFI declarations for libprotood's public C API (`<protood/protood.h>`), written by hand
//! (no bindgen, no crates). Every item mirrors the header one for one: `int32_t` is `i32`,
//! `int64_t` is `i64`, `size_t` is `usize`, handles are opaque `#[repr(C)]` structs that can only
//! be used behind pointers. The test `tests/header.rs` parses the header and checks every
//! constant and every function signature against this file.
//!
//! Everything here is `unsafe` and follows the C contract (docs/conventions.md): a failing call
//! returns a negative status, writes nothing and leaves its handle as it was, and
//! [`protood_last_error`] holds a thread-local message. Use the `protood` crate for a safe API.
//!
//! Linking: `build.rs` uses `PROTOOD_LIB_DIR` if set, else `pkg-config --libs protood`.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_void};

/// Status code returned by every function that can fail: [`PROTOOD_OK`] or a negative code.
pub type protood_status = i32;

pub const PROTOOD_OK: protood_status = 0;
pub const PROTOOD_E_INVALID_ARG: protood_status = -1;
pub const PROTOOD_E_NOMEM: protood_status = -2;
pub const PROTOOD_E_SHAPE: protood_status = -3;
pub const PROTOOD_E_STATE: protood_status = -4;
pub const PROTOOD_E_NONFINITE: protood_status = -5;
pub const PROTOOD_E_LABEL: protood_status = -6;
pub const PROTOOD_E_IO: protood_status = -7;
pub const PROTOOD_E_FORMAT: protood_status = -8;
pub const PROTOOD_E_CALLBACK: protood_status = -9;
pub const PROTOOD_E_UNSUPPORTED: protood_status = -10;
pub const PROTOOD_E_INTERNAL: protood_status = -99;

// Compile-time version of the library these declarations describe (protood_version.h, which
// meson generates from meson.build's project version and soversion).
pub const PROTOOD_VERSION_MAJOR: u32 = 0;
pub const PROTOOD_VERSION_MINOR: u32 = 2;
pub const PROTOOD_VERSION_PATCH: u32 = 0;
pub const PROTOOD_VERSION_NUMBER: u32 =
    PROTOOD_VERSION_MAJOR * 10000 + PROTOOD_VERSION_MINOR * 100 + PROTOOD_VERSION_PATCH;
pub const PROTOOD_VERSION_STRING: &str = "0.2.0";
/// The SONAME number these declarations were written for; compare with
/// [`protood_abi_version`] at load time.
pub const PROTOOD_ABI_VERSION: u32 = 0;

// Bank parameter keys.
pub const PROTOOD_BANK_MOMENTUM: i32 = 1;
pub const PROTOOD_BANK_TEMPERATURE: i32 = 2;
pub const PROTOOD_BANK_SINKHORN_EPSILON: i32 = 3;
pub const PROTOOD_BANK_SINKHORN_ITERS: i32 = 4;
pub const PROTOOD_BANK_TOPK: i32 = 5;
pub const PROTOOD_BANK_LAMBDA_PCON: i32 = 6;
pub const PROTOOD_BANK_PCON_TEMPERATURE: i32 = 7;
pub const PROTOOD_BANK_COMP_WEIGHT: i32 = 8;
pub const PROTOOD_BANK_DIS_BASE_TEMPERATURE: i32 = 9;
pub const PROTOOD_BANK_COMP_BASE_TEMPERATURE: i32 = 10;

// Prototype initialisation schemes.
pub const PROTOOD_INIT_SPHERE: i32 = 1;
pub const PROTOOD_INIT_POSITIVE: i32 = 2;

// Metrics.
pub const PROTOOD_POSITIVE_IN: i32 = 1;
pub const PROTOOD_POSITIVE_OUT: i32 = 2;
pub const PROTOOD_FPR_ROC: i32 = 0;
pub const PROTOOD_FPR_KNN: i32 = 1;
pub const PROTOOD_FPR_PERCENTILE: i32 = 2;
pub const PROTOOD_FPR_OOD_POSITIVE: i32 = 3;

// .npy element types.
pub const PROTOOD_DTYPE_F32: i32 = 1;
pub const PROTOOD_DTYPE_F64: i32 = 2;
pub const PROTOOD_DTYPE_F16: i32 = 3;
pub const PROTOOD_DTYPE_I32: i32 = 4;
pub const PROTOOD_DTYPE_I64: i32 = 5;

// Scorer kinds and parameter keys.
pub const PROTOOD_SCORER_KNN: i32 = 1;
pub const PROTOOD_SCORER_MAHALANOBIS: i32 = 2;
pub const PROTOOD_SCORER_SSD: i32 = 3;
pub const PROTOOD_SCORER_PROTOTYPE: i32 = 4;
pub const PROTOOD_SCORER_K: i32 = 1;
pub const PROTOOD_SCORER_NORMALIZE: i32 = 2;

/// Opaque prototype bank (`typedef struct protood_bank protood_bank;`).
#[repr(C)]
pub struct protood_bank {
    _private: [u8; 0],
}

/// Opaque scorer (`typedef struct protood_scorer protood_scorer;`).
#[repr(C)]
pub struct protood_scorer {
    _private: [u8; 0],
}

/// Feature callback: writes `count` rows (`count x dim` floats) to `rows_out` and, when
/// `labels_out` is not NULL, `count` labels; returns 0 to go on, anything else to abort the call
/// with [`PROTOOD_E_CALLBACK`]. A Rust callback must never unwind into C.
pub type protood_feature_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        first: i64,
        count: i64,
        rows_out: *mut f32,
        labels_out: *mut i32,
    ) -> i32,
>;

/// Reducer (@since 0.2): sums `count` doubles in `buf` in place across all participants (an
/// `MPI_Allreduce(MPI_SUM)` in practice); returns 0 on success, anything else to abort the call
/// with [`PROTOOD_E_CALLBACK`].
pub type protood_allreduce_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, buf: *mut f64, count: i64) -> i32>;

extern "C" {
    // Status, errors, version.
    pub fn protood_status_string(status: protood_status) -> *const c_char;
    pub fn protood_last_error() -> *const c_char;
    pub fn protood_version_number() -> u32;
    pub fn protood_version_string() -> *const c_char;
    pub fn protood_abi_version() -> u32;
    pub fn protood_build_info() -> *const c_char;
    pub fn protood_set_threads(n: i32) -> protood_status;

    // Prototype bank.
    pub fn protood_bank_create(out: *mut *mut protood_bank, n_classes: i64, protos_per_class: i64,
                               dim: i64) -> protood_status;
    pub fn protood_bank_free(bank: *mut protood_bank);
    pub fn protood_bank_clone(out: *mut *mut protood_bank, src: *const protood_bank) -> protood_status;
    pub fn protood_bank_shape(bank: *const protood_bank, n_classes: *mut i64, protos_per_class: *mut i64,
                              dim: *mut i64) -> protood_status;
    pub fn protood_bank_set_param(bank: *mut protood_bank, key: i32, value: f64) -> protood_status;
    pub fn protood_bank_get_param(bank: *const protood_bank, key: i32, value: *mut f64) -> protood_status;
    pub fn protood_bank_init_random(bank: *mut protood_bank, scheme: i32, seed: u64) -> protood_status;
    pub fn protood_bank_init_from_features(bank: *mut protood_bank, n: i64, x: *const f32,
                                           labels: *const i32, seed: u64) -> protood_status;
    pub fn protood_bank_get_prototypes(bank: *const protood_bank, out: *mut f32) -> protood_status;
    pub fn protood_bank_set_prototypes(bank: *mut protood_bank, input: *const f32) -> protood_status;
    pub fn protood_bank_save(bank: *const protood_bank, path: *const c_char) -> protood_status;
    pub fn protood_bank_load(out: *mut *mut protood_bank, path: *const c_char) -> protood_status;
    pub fn protood_bank_to_buffer(bank: *const protood_bank, buf: *mut c_void, capacity: usize,
                                  size_out: *mut usize) -> protood_status;
    pub fn protood_bank_from_buffer(out: *mut *mut protood_bank, buf: *const c_void,
                                    size: usize) -> protood_status;

    // Metrics.
    pub fn protood_auroc(n_in: i64, s_in: *const f32, n_out: i64, s_out: *const f32,
                         out: *mut f64) -> protood_status;
    pub fn protood_aupr(n_in: i64, s_in: *const f32, n_out: i64, s_out: *const f32, positive: i32,
                        out: *mut f64) -> protood_status;
    pub fn protood_fpr_at_tpr(n_in: i64, s_in: *const f32, n_out: i64, s_out: *const f32, tpr: f64,
                              convention: i32, out: *mut f64) -> protood_status;

    // Training steps and building blocks.
    pub fn protood_palm_step(bank: *mut protood_bank, n: i64, h: *const f32, labels: *const i32,
                             losses: *mut f64, grad: *mut f32) -> protood_status;
    pub fn protood_cider_step(bank: *mut protood_bank, n: i64, h: *const f32, labels: *const i32,
                              losses: *mut f64, grad: *mut f32) -> protood_status;
    pub fn protood_sinkhorn(n: i64, p: i64, scores: *const f32, epsilon: f64, iters: i32,
                            assign_out: *mut f32) -> protood_status;
    pub fn protood_palm_assign(bank: *const protood_bank, n: i64, h: *const f32, labels: *const i32,
                               weights_out: *mut f32) -> protood_status;

    // Feature files (.npy).
    pub fn protood_npy_info(path: *const c_char, dtype: *mut i32, rows: *mut i64,
                            cols: *mut i64) -> protood_status;
    pub fn protood_npy_read_f32(path: *const c_char, rows: i64, cols: i64, out: *mut f32) -> protood_status;
    pub fn protood_npy_read_f64(path: *const c_char, rows: i64, cols: i64, out: *mut f64) -> protood_status;
    pub fn protood_npy_read_i32(path: *const c_char, n: i64, out: *mut i32) -> protood_status;
    pub fn protood_npy_write_f32(path: *const c_char, rows: i64, cols: i64,
                                 data: *const f32) -> protood_status;
    pub fn protood_npy_write_f32_vector(path: *const c_char, n: i64, data: *const f32) -> protood_status;
    pub fn protood_npy_write_i32(path: *const c_char, n: i64, data: *const i32) -> protood_status;

    // Scorers.
    pub fn protood_scorer_create(out: *mut *mut protood_scorer, kind: i32, dim: i64) -> protood_status;
    pub fn protood_scorer_free(scorer: *mut protood_scorer);
    pub fn protood_scorer_set_param(scorer: *mut protood_scorer, key: i32, value: f64) -> protood_status;
    pub fn protood_scorer_get_param(scorer: *const protood_scorer, key: i32,
                                    value: *mut f64) -> protood_status;
    pub fn protood_bank_set_reducer(bank: *mut protood_bank, fn_: protood_allreduce_fn, user: *mut c_void,
                                    rank: i32, size: i32) -> protood_status;
    pub fn protood_scorer_set_reducer(scorer: *mut protood_scorer, fn_: protood_allreduce_fn,
                                      user: *mut c_void, rank: i32, size: i32) -> protood_status;
    pub fn protood_scorer_info(scorer: *const protood_scorer, kind: *mut i32, dim: *mut i64,
                               fitted: *mut i32) -> protood_status;
    pub fn protood_scorer_fit(scorer: *mut protood_scorer, n: i64, x: *const f32, labels: *const i32,
                              n_classes: i64) -> protood_status;
    pub fn protood_scorer_fit_bank(scorer: *mut protood_scorer, bank: *const protood_bank) -> protood_status;
    pub fn protood_scorer_score(scorer: *const protood_scorer, m: i64, q: *const f32,
                                scores_out: *mut f32) -> protood_status;
    pub fn protood_scorer_to_buffer(scorer: *const protood_scorer, buf: *mut c_void, capacity: usize,
                                    size_out: *mut usize) -> protood_status;
    pub fn protood_scorer_from_buffer(out: *mut *mut protood_scorer, buf: *const c_void,
                                      size: usize) -> protood_status;
    pub fn protood_scorer_save(scorer: *const protood_scorer, path: *const c_char) -> protood_status;
    pub fn protood_scorer_load(out: *mut *mut protood_scorer, path: *const c_char) -> protood_status;

    // Feature callback.
    pub fn protood_scorer_fit_stream(scorer: *mut protood_scorer, n: i64, batch: i64,
                                     fn_: protood_feature_fn, user: *mut c_void,
                                     n_classes: i64) -> protood_status;
    pub fn protood_scorer_score_stream(scorer: *const protood_scorer, m: i64, batch: i64,
                                       fn_: protood_feature_fn, user: *mut c_void,
                                       scores_out: *mut f32) -> protood_status;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn links_and_reports_abi() {
        // The loaded library is the ABI these declarations describe.
        assert_eq!(unsafe { protood_abi_version() }, PROTOOD_ABI_VERSION);
        assert_eq!(unsafe { protood_version_number() }, PROTOOD_VERSION_NUMBER);
        let v = unsafe { CStr::from_ptr(protood_version_string()) };
        assert_eq!(v.to_str().unwrap(), PROTOOD_VERSION_STRING);
    }

    #[test]
    fn raw_bank_round_trip() {
        let mut bank: *mut protood_bank = std::ptr::null_mut();
        assert_eq!(unsafe { protood_bank_create(&mut bank, 3, 2, 5) }, PROTOOD_OK);
        let (mut c, mut k, mut d) = (0i64, 0i64, 0i64);
        assert_eq!(unsafe { protood_bank_shape(bank, &mut c, &mut k, &mut d) }, PROTOOD_OK);
        assert_eq!((c, k, d), (3, 2, 5));
        let mut v = 0.0f64;
        assert_eq!(unsafe { protood_bank_get_param(bank, PROTOOD_BANK_MOMENTUM, &mut v) }, PROTOOD_OK);
        assert_eq!(v, 0.999);
        assert_eq!(unsafe { protood_bank_set_param(bank, 999, 1.0) }, PROTOOD_E_INVALID_ARG);
        let msg = unsafe { CStr::from_ptr(protood_last_error()) }.to_string_lossy().into_owned();
        assert!(msg.contains("protood_bank_set_param"), "{}", msg);
        unsafe { protood_bank_free(bank) };
        unsafe { protood_bank_free(std::ptr::null_mut()) };
    }
}
