//! OOD metrics (SPEC §7): in-distribution (ID) scores `s_in`, out-of-distribution (OOD) scores
//! `s_out`, higher = more in-distribution. Exact for any ties; stateless and thread-safe.
//! Errors: INVALID_ARG (an empty slice, an argument out of range), NONFINITE (a NaN score,
//! named with its index), NOMEM.
//!
//! ```
//! use protood::metrics::{auroc, aupr, fpr_at_tpr, FprConvention, Positive};
//! let s_in = [0.9, 0.8, 0.7, 0.4];
//! let s_out = [0.5, 0.3, 0.2];
//! assert_eq!(auroc(&s_in, &s_out)?, 11.0 / 12.0); // 11 of 12 (ID, OOD) pairs are ordered
//! assert_eq!(aupr(&s_in, &s_out, Positive::In)?, (1.0 + 1.0 + 1.0 + 4.0 / 5.0) / 4.0);
//! assert_eq!(fpr_at_tpr(&s_in, &s_out, 0.95, FprConvention::Roc)?, 1.0 / 3.0);
//! # Ok::<(), protood::Error>(())
//! ```
use crate::error::{check, Result};
use crate::{sys, to_i64};

/// Which class AUPR treats as positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Positive {
    /// AUPR-In: ID rows are the positives.
    In,
    /// AUPR-Out: OOD rows are the positives and the scores are negated.
    Out,
}

/// Conventions of published code for FPR at a TPR (see the C header for the exact rules).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FprConvention {
    /// The ROC definition (`roc_curve(drop_intermediate=False)`), the default.
    #[default]
    Roc,
    /// KNN (Sun et al. 2022): OOD fraction strictly above `sorted(s_in)[round(0.05 n_in)]`.
    Knn,
    /// PALM's: OOD fraction strictly above `numpy.percentile(s_in, 5)`.
    Percentile,
    /// OpenOOD's: OOD is the positive class.
    OodPositive,
}

impl FprConvention {
    fn code(self) -> i32 {
        match self {
            FprConvention::Roc => sys::PROTOOD_FPR_ROC,
            FprConvention::Knn => sys::PROTOOD_FPR_KNN,
            FprConvention::Percentile => sys::PROTOOD_FPR_PERCENTILE,
            FprConvention::OodPositive => sys::PROTOOD_FPR_OOD_POSITIVE,
        }
    }
}

/// Area under the ROC curve, ID positive (ties count one half).
pub fn auroc(s_in: &[f32], s_out: &[f32]) -> Result<f64> {
    const F: &str = "protood::auroc";
    let mut out = 0.0;
    check(unsafe {
        sys::protood_auroc(to_i64(F, s_in.len())?, s_in.as_ptr(), to_i64(F, s_out.len())?, s_out.as_ptr(), &mut out)
    })?;
    Ok(out)
}

/// Average precision (step-wise, as scikit-learn's), with ID or OOD rows as the positives.
pub fn aupr(s_in: &[f32], s_out: &[f32], positive: Positive) -> Result<f64> {
    const F: &str = "protood::aupr";
    let positive = match positive {
        Positive::In => sys::PROTOOD_POSITIVE_IN,
        Positive::Out => sys::PROTOOD_POSITIVE_OUT,
    };
    let mut out = 0.0;
    check(unsafe {
        sys::protood_aupr(to_i64(F, s_in.len())?, s_in.as_ptr(), to_i64(F, s_out.len())?, s_out.as_ptr(),
                          positive, &mut out)
    })?;
    Ok(out)
}

/// False-positive rate at true-positive rate `tpr` in `(0, 1]` (0.95 for FPR95).
pub fn fpr_at_tpr(s_in: &[f32], s_out: &[f32], tpr: f64, convention: FprConvention) -> Result<f64> {
    const F: &str = "protood::fpr_at_tpr";
    let mut out = 0.0;
    check(unsafe {
        sys::protood_fpr_at_tpr(to_i64(F, s_in.len())?, s_in.as_ptr(), to_i64(F, s_out.len())?, s_out.as_ptr(),
                                tpr, convention.code(), &mut out)
    })?;
    Ok(out)
}
