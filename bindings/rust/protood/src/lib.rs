//! Safe Rust bindings for libprotood: out-of-distribution (OOD) detection with prototype-based
//! hyperspherical embeddings (CIDER and PALM).
//!
//! - [`Bank`]: a bank of vMF prototypes with the PALM and CIDER training steps
//!   ([`Bank::palm_step`], [`Bank::cider_step`]), [`Bank::palm_assign`], persistence.
//! - [`Scorer`]: KNN, Mahalanobis, SSD and prototype scorers (higher = more in-distribution),
//!   fitted from slices, a [`Bank`] or a closure that streams batches ([`Scorer::fit_stream`]).
//! - [`metrics`]: AUROC, AUPR and FPR at a TPR; [`sinkhorn`]; [`npy`] feature files.
//!
//! Matrices are row-major `f32` slices (`n x dim`), labels `i32` in `[0, n_classes)`. Every
//! fallible function returns [`Result`]; an [`Error`] carries the status kind, the raw code and
//! the library's message. Slice lengths are checked here before any C call, so the library never
//! reads or writes outside a slice.
//!
//! Threads: [`Bank`] and [`Scorer`] are `Send` (a handle can move to another thread) and `Sync`:
//! the C library guarantees that functions taking a const handle (scoring, reading, saving) may
//! run on the same handle from several threads at once, and those take `&self` here; everything
//! that mutates a handle takes `&mut self`.
//!
//! ```
//! use protood::{Bank, BankParam, Scorer, ScorerKind};
//!
//! // A PALM bank: 2 classes, 3 prototypes each, 4-dimensional embeddings.
//! let mut bank = Bank::new(2, 3, 4)?;
//! bank.set_param(BankParam::Momentum, 0.9)?;
//! let h = [1.0, 0.2, 0.0, 0.1,   0.9, 0.1, 0.1, 0.0,   0.0, 0.1, 1.0, 0.3,   0.1, 0.0, 0.8, 0.2];
//! let labels = [0, 0, 1, 1];
//! let step = bank.palm_step(&h, Some(&labels))?;
//! assert!(step.losses.total.is_finite());
//! assert_eq!(step.grad.len(), h.len());
//!
//! // Score queries by their maximum cosine to the prototypes.
//! let mut scorer = Scorer::new(ScorerKind::Prototype, 4)?;
//! scorer.fit_bank(&bank)?;
//! let scores = scorer.score(&[1.0, 0.1, 0.0, 0.0])?;
//! assert!(scores[0] > 0.5 && scores[0] <= 1.0);
//! # Ok::<(), protood::Error>(())
//! ```
#![warn(missing_docs)]

pub use protood_sys as sys;

mod bank;
mod error;
pub mod metrics;
pub mod npy;
mod scorer;

pub use bank::{Bank, BankParam, CiderLosses, CiderStep, InitScheme, PalmLosses, PalmStep};
pub use error::{Error, ErrorKind, Result};
pub use metrics::{aupr, auroc, fpr_at_tpr, FprConvention, Positive};
pub use scorer::{Scorer, ScorerKind, ScorerParam, StreamError};

use std::ffi::{CStr, CString};
use std::path::Path;

/// The ABI number these bindings were written for (the library's SONAME number).
pub const ABI_VERSION: u32 = sys::PROTOOD_ABI_VERSION;
/// The library version these bindings were written for, `major*10000 + minor*100 + patch`.
pub const VERSION_NUMBER: u32 = sys::PROTOOD_VERSION_NUMBER;

fn static_str(p: *const std::os::raw::c_char) -> &'static str {
    // The library's version, build and status strings are static and ASCII.
    if p.is_null() {
        ""
    } else {
        unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
    }
}

/// Version of the loaded library, "major.minor.patch".
pub fn version() -> &'static str {
    static_str(unsafe { sys::protood_version_string() })
}

/// Version of the loaded library as `major*10000 + minor*100 + patch`.
pub fn version_number() -> u32 {
    unsafe { sys::protood_version_number() }
}

/// ABI number (SONAME number) of the loaded library.
pub fn abi_version() -> u32 {
    unsafe { sys::protood_abi_version() }
}

/// How the loaded library was built: `key=value` pairs joined by `;`.
pub fn build_info() -> &'static str {
    static_str(unsafe { sys::protood_build_info() })
}

/// Short static text of a status code ("invalid argument", ...).
pub fn status_string(code: i32) -> &'static str {
    static_str(unsafe { sys::protood_status_string(code) })
}

/// Check that the loaded library has the ABI these bindings were written for (the check
/// SQLite-style bindings make at load time). Errors: [`ErrorKind::Unsupported`] on a mismatch.
///
/// ```
/// protood::check_abi().expect("libprotood ABI mismatch");
/// assert!(protood::version_number() >= protood::VERSION_NUMBER);
/// ```
pub fn check_abi() -> Result<()> {
    let loaded = abi_version();
    if loaded == ABI_VERSION {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Unsupported,
                       format!("protood::check_abi: loaded libprotood has ABI {} (version {}), these bindings need ABI {}",
                               loaded, version(), ABI_VERSION)))
    }
}

/// Threads for the library's OpenMP loops and its BLAS (n >= 1). Process-wide: call it once at
/// start-up, not while other library calls run. Errors: [`ErrorKind::InvalidArg`] for 0.
pub fn set_threads(n: usize) -> Result<()> {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    error::check(unsafe { sys::protood_set_threads(n) })
}

/// Sinkhorn-Knopp soft assignment (SPEC §2) of an `n x p` score matrix (`scores.len() = n p`):
/// every row of the result sums to 1. Errors: [`ErrorKind::Shape`] if `scores.len()` is not a
/// multiple of `p`; the library's INVALID_ARG (empty, `p = 0`, `epsilon <= 0`, `iters = 0`) and
/// NONFINITE.
///
/// ```
/// let scores = [0.9, 0.1, 0.2,   0.1, 0.8, 0.3];
/// let q = protood::sinkhorn(&scores, 3, 0.05, 3)?;
/// assert_eq!(q.len(), 6);
/// assert!((q[0] + q[1] + q[2] - 1.0).abs() < 1e-5);
/// # Ok::<(), protood::Error>(())
/// ```
pub fn sinkhorn(scores: &[f32], p: usize, epsilon: f64, iters: u32) -> Result<Vec<f32>> {
    const F: &str = "protood::sinkhorn";
    // p = 0 goes to the library, which rejects it with its own message.
    let n = if p == 0 { scores.len() } else { rows_of(F, "scores", scores.len(), p)? };
    let iters = i32::try_from(iters)
        .map_err(|_| Error::new(ErrorKind::InvalidArg, format!("{}: iters = {} exceeds the int32 range", F, iters)))?;
    let mut out = vec![0.0f32; n.saturating_mul(p)];
    error::check(unsafe {
        sys::protood_sinkhorn(to_i64(F, n)?, to_i64(F, p)?, scores.as_ptr(), epsilon, iters, out.as_mut_ptr())
    })?;
    Ok(out)
}

// ---- helpers shared by the modules ----------------------------------------------------------

/// Rows of a row-major matrix slice of `len` values with `cols` columns (`cols >= 1`).
pub(crate) fn rows_of(func: &str, what: &str, len: usize, cols: usize) -> Result<usize> {
    debug_assert!(cols >= 1);
    if len % cols != 0 {
        return Err(Error::new(ErrorKind::Shape,
                              format!("{}: {}.len() = {} is not a multiple of dim = {}", func, what, len, cols)));
    }
    Ok(len / cols)
}

/// Check an exact slice length.
pub(crate) fn expect_len(func: &str, what: &str, len: usize, expected: usize, why: &str) -> Result<()> {
    if len != expected {
        return Err(Error::new(ErrorKind::Shape,
                              format!("{}: {}.len() = {}, expected {} ({})", func, what, len, expected, why)));
    }
    Ok(())
}

pub(crate) fn to_i64(func: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::new(ErrorKind::Shape, format!("{}: {} exceeds the int64 range", func, v)))
}

/// Product of two counts, or a SHAPE error on overflow.
pub(crate) fn mul(func: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| Error::new(ErrorKind::Shape, format!("{}: {} x {} overflows", func, a, b)))
}

/// A path as a C string. Errors: INVALID_ARG for an interior NUL (or non-UTF-8 off Unix).
pub(crate) fn c_path(func: &str, path: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| Error::new(ErrorKind::InvalidArg, format!("{}: path {:?} is not UTF-8", func, path)))?
        .as_bytes()
        .to_vec();
    CString::new(bytes)
        .map_err(|_| Error::new(ErrorKind::InvalidArg, format!("{}: path {:?} contains a NUL byte", func, path)))
}
