//! The prototype bank and the training steps.
use crate::error::{check, Error, ErrorKind, Result};
use crate::{c_path, expect_len, mul, rows_of, sys, to_i64};
use std::fmt;
use std::path::Path;
use std::ptr::{self, NonNull};

/// Parameters of a [`Bank`] (the `PROTOOD_BANK_*` keys; ranges and defaults from SPEC.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BankParam {
    /// EMA momentum of the prototype update, `[0, 1)`, default 0.999 (CIDER users set 0.5).
    Momentum,
    /// Temperature tau of the MLE / compactness loss, `> 0`, default 0.1.
    Temperature,
    /// Sinkhorn epsilon, `> 0`, default 0.05.
    SinkhornEpsilon,
    /// Sinkhorn iterations, integer `>= 1`, default 3.
    SinkhornIters,
    /// PALM's top-k prototypes per row, integer `>= 0` (0 = all), default 5, clamped to K.
    TopK,
    /// Weight of PALM's prototype-contrastive loss, `>= 0`, default 1.0.
    LambdaPcon,
    /// Temperature of the prototype-contrastive loss, `> 0`, default 0.5.
    PconTemperature,
    /// CIDER's compactness weight w, `>= 0`, default 1.0.
    CompWeight,
    /// CIDER's dispersion base temperature, `> 0`, default 0.1.
    DisBaseTemperature,
    /// CIDER's compactness base temperature, `> 0`, default 0.07.
    CompBaseTemperature,
}

impl BankParam {
    /// Every key, in the order of their numbers.
    pub const ALL: [BankParam; 10] = [
        BankParam::Momentum, BankParam::Temperature, BankParam::SinkhornEpsilon, BankParam::SinkhornIters,
        BankParam::TopK, BankParam::LambdaPcon, BankParam::PconTemperature, BankParam::CompWeight,
        BankParam::DisBaseTemperature, BankParam::CompBaseTemperature,
    ];

    /// The C key (`PROTOOD_BANK_*`).
    pub fn key(self) -> i32 {
        match self {
            BankParam::Momentum => sys::PROTOOD_BANK_MOMENTUM,
            BankParam::Temperature => sys::PROTOOD_BANK_TEMPERATURE,
            BankParam::SinkhornEpsilon => sys::PROTOOD_BANK_SINKHORN_EPSILON,
            BankParam::SinkhornIters => sys::PROTOOD_BANK_SINKHORN_ITERS,
            BankParam::TopK => sys::PROTOOD_BANK_TOPK,
            BankParam::LambdaPcon => sys::PROTOOD_BANK_LAMBDA_PCON,
            BankParam::PconTemperature => sys::PROTOOD_BANK_PCON_TEMPERATURE,
            BankParam::CompWeight => sys::PROTOOD_BANK_COMP_WEIGHT,
            BankParam::DisBaseTemperature => sys::PROTOOD_BANK_DIS_BASE_TEMPERATURE,
            BankParam::CompBaseTemperature => sys::PROTOOD_BANK_COMP_BASE_TEMPERATURE,
        }
    }
}

/// How [`Bank::init_random`] draws the prototypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InitScheme {
    /// Uniform random directions (normalised Gaussian entries).
    Sphere,
    /// Uniform `[0, 1)` entries then normalised: the PALM reference (what [`Bank::new`] uses).
    Positive,
}

impl InitScheme {
    fn code(self) -> i32 {
        match self {
            InitScheme::Sphere => sys::PROTOOD_INIT_SPHERE,
            InitScheme::Positive => sys::PROTOOD_INIT_POSITIVE,
        }
    }
}

/// Losses of a PALM step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PalmLosses {
    /// `mle + lambda * pcon`.
    pub total: f64,
    /// The MLE loss.
    pub mle: f64,
    /// The prototype-contrastive loss (0 when lambda = 0).
    pub pcon: f64,
}

/// Result of [`Bank::palm_step`].
#[derive(Clone, Debug, PartialEq)]
pub struct PalmStep {
    /// The losses of the batch.
    pub losses: PalmLosses,
    /// d(total loss)/dh, `n x dim`, row-major.
    pub grad: Vec<f32>,
}

/// Losses of a CIDER step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CiderLosses {
    /// `w * comp + dis`.
    pub total: f64,
    /// The compactness loss.
    pub comp: f64,
    /// The dispersion loss (0 for a single class).
    pub dis: f64,
}

/// Result of [`Bank::cider_step`].
#[derive(Clone, Debug, PartialEq)]
pub struct CiderStep {
    /// The losses of the batch.
    pub losses: CiderLosses,
    /// d(total loss)/dh, `n x dim`, row-major.
    pub grad: Vec<f32>,
}

/// A bank of `P = n_classes x protos_per_class` unit prototypes of dimension `dim` (class-major:
/// row `c*K + k` belongs to class `c`) with the parameters of the training steps.
///
/// Owns a `protood_bank`, freed on drop. `Send` and `Sync`: the C contract lets a bank move
/// between threads and lets its const functions (`&self` here: reading, saving,
/// [`palm_assign`](Bank::palm_assign)) run on it from several threads at once; the steps and
/// setters need exclusive access and take `&mut self`.
pub struct Bank {
    raw: NonNull<sys::protood_bank>,
    n_classes: usize,
    protos_per_class: usize,
    dim: usize,
}

// SAFETY: see the type's documentation (docs/conventions.md, "Threading contract").
unsafe impl Send for Bank {}
unsafe impl Sync for Bank {}

impl Drop for Bank {
    fn drop(&mut self) {
        unsafe { sys::protood_bank_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Bank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bank")
            .field("n_classes", &self.n_classes)
            .field("protos_per_class", &self.protos_per_class)
            .field("dim", &self.dim)
            .finish()
    }
}

impl Clone for Bank {
    /// A deep copy. Panics only if the library cannot allocate it (as `Vec::clone` would);
    /// use [`Bank::try_clone`] to handle that.
    fn clone(&self) -> Bank {
        self.try_clone().expect("protood_bank_clone failed")
    }
}

impl Bank {
    /// Take ownership of a bank created by the C library, reading its shape.
    fn from_raw(raw: *mut sys::protood_bank) -> Result<Bank> {
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::Internal, "protood::Bank: library returned NULL".into()))?;
        let (mut c, mut k, mut d) = (0i64, 0i64, 0i64);
        let status = unsafe { sys::protood_bank_shape(raw.as_ptr(), &mut c, &mut k, &mut d) };
        if status != sys::PROTOOD_OK {
            let err = Error::from_last(status);
            unsafe { sys::protood_bank_free(raw.as_ptr()) };
            return Err(err);
        }
        Ok(Bank { raw, n_classes: c as usize, protos_per_class: k as usize, dim: d as usize })
    }

    /// New bank with the default parameters and prototypes as
    /// `init_random(InitScheme::Positive, 0)` draws them. Errors: INVALID_ARG (a size of 0),
    /// SHAPE (P x D overflows), NOMEM.
    ///
    /// ```
    /// let bank = protood::Bank::new(10, 6, 128)?;
    /// assert_eq!(bank.n_prototypes(), 60);
    /// assert_eq!(bank.param(protood::BankParam::Momentum)?, 0.999);
    /// # Ok::<(), protood::Error>(())
    /// ```
    pub fn new(n_classes: usize, protos_per_class: usize, dim: usize) -> Result<Bank> {
        const F: &str = "protood::Bank::new";
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::protood_bank_create(&mut raw, to_i64(F, n_classes)?, to_i64(F, protos_per_class)?, to_i64(F, dim)?)
        })?;
        Bank::from_raw(raw)
    }

    /// An independent deep copy (prototypes and parameters). Errors: NOMEM.
    pub fn try_clone(&self) -> Result<Bank> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::protood_bank_clone(&mut raw, self.raw.as_ptr()) })?;
        Bank::from_raw(raw)
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }
    /// Prototypes per class (K).
    pub fn protos_per_class(&self) -> usize {
        self.protos_per_class
    }
    /// Embedding dimension (D).
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Total number of prototypes, `P = n_classes x protos_per_class`.
    pub fn n_prototypes(&self) -> usize {
        self.n_classes * self.protos_per_class
    }

    /// The raw handle, for calls into [`sys`](crate::sys) (valid while `self` lives; do not free).
    pub fn as_ptr(&self) -> *const sys::protood_bank {
        self.raw.as_ptr()
    }

    /// Set a parameter. Errors: INVALID_ARG (out of range, NaN/Inf, fractional for an integer
    /// key); the old value stays.
    pub fn set_param(&mut self, key: BankParam, value: f64) -> Result<()> {
        check(unsafe { sys::protood_bank_set_param(self.raw.as_ptr(), key.key(), value) })
    }

    /// `set_param` in builder style: `Bank::new(3, 1, 8)?.with_param(BankParam::Momentum, 0.5)?`.
    pub fn with_param(mut self, key: BankParam, value: f64) -> Result<Bank> {
        self.set_param(key, value)?;
        Ok(self)
    }

    /// Read a parameter.
    pub fn param(&self, key: BankParam) -> Result<f64> {
        let mut v = 0.0;
        check(unsafe { sys::protood_bank_get_param(self.raw.as_ptr(), key.key(), &mut v) })?;
        Ok(v)
    }

    /// Re-draw every prototype from `seed` (the same seed gives the same prototypes everywhere).
    pub fn init_random(&mut self, scheme: InitScheme, seed: u64) -> Result<()> {
        check(unsafe { sys::protood_bank_init_random(self.raw.as_ptr(), scheme.code(), seed) })
    }

    /// Initialise the prototypes from feature rows `x` (`n x dim`) and their labels (`n`): class
    /// means for K = 1, per-class spherical k-means++ for K > 1 (see the C header for classes
    /// short of data). Errors: SHAPE (slice lengths), INVALID_ARG, NONFINITE, LABEL, NOMEM.
    pub fn init_from_features(&mut self, x: &[f32], labels: &[i32], seed: u64) -> Result<()> {
        const F: &str = "protood::Bank::init_from_features";
        let n = rows_of(F, "x", x.len(), self.dim)?;
        expect_len(F, "labels", labels.len(), n, "one per row of x")?;
        check(unsafe {
            sys::protood_bank_init_from_features(self.raw.as_ptr(), to_i64(F, n)?, x.as_ptr(), labels.as_ptr(), seed)
        })
    }

    /// Copy of the `P x dim` prototypes, class-major, row-major.
    pub fn prototypes(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_prototypes() * self.dim];
        let status = unsafe { sys::protood_bank_get_prototypes(self.raw.as_ptr(), out.as_mut_ptr()) };
        // Only fails for NULL arguments, which a Bank never passes.
        assert_eq!(status, sys::PROTOOD_OK, "protood_bank_get_prototypes failed");
        out
    }

    /// Replace the prototypes with `p` (`P x dim`), each row normalised. Errors: SHAPE (length),
    /// NONFINITE (NaN/Inf or an all-zero row; the bank keeps its prototypes).
    pub fn set_prototypes(&mut self, p: &[f32]) -> Result<()> {
        const F: &str = "protood::Bank::set_prototypes";
        expect_len(F, "p", p.len(), mul(F, self.n_prototypes(), self.dim)?, "n_prototypes x dim")?;
        check(unsafe { sys::protood_bank_set_prototypes(self.raw.as_ptr(), p.as_ptr()) })
    }

    /// Write the bank to `path` atomically (versioned, checksummed format). Errors: IO, NOMEM.
    pub fn save<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        let path = c_path("protood::Bank::save", path.as_ref())?;
        check(unsafe { sys::protood_bank_save(self.raw.as_ptr(), path.as_ptr()) })
    }

    /// Read a bank written by [`Bank::save`]. Errors: IO, FORMAT, NOMEM.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("protood-doc-bank-{}.bin", std::process::id()));
    /// let mut bank = protood::Bank::new(3, 2, 8)?;
    /// bank.init_random(protood::InitScheme::Sphere, 42)?;
    /// bank.save(&path)?;
    /// let back = protood::Bank::load(&path)?;
    /// assert_eq!(back.prototypes(), bank.prototypes());
    /// std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), protood::Error>(())
    /// ```
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Bank> {
        let path = c_path("protood::Bank::load", path.as_ref())?;
        let mut raw = ptr::null_mut();
        check(unsafe { sys::protood_bank_load(&mut raw, path.as_ptr()) })?;
        Bank::from_raw(raw)
    }

    /// The bank in the file format, as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut size = 0usize;
        check(unsafe { sys::protood_bank_to_buffer(self.raw.as_ptr(), ptr::null_mut(), 0, &mut size) })?;
        let mut buf = vec![0u8; size];
        check(unsafe {
            sys::protood_bank_to_buffer(self.raw.as_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut size)
        })?;
        buf.truncate(size);
        Ok(buf)
    }

    /// A bank from bytes written by [`Bank::to_bytes`] (or a file of [`Bank::save`]).
    /// Errors: FORMAT (also for an empty slice), NOMEM.
    pub fn from_bytes(bytes: &[u8]) -> Result<Bank> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::protood_bank_from_buffer(&mut raw, bytes.as_ptr().cast(), bytes.len()) })?;
        Bank::from_raw(raw)
    }

    fn check_batch(&self, func: &str, h: &[f32], labels: Option<&[i32]>) -> Result<usize> {
        let n = rows_of(func, "h", h.len(), self.dim)?;
        if let Some(l) = labels {
            expect_len(func, "labels", l.len(), n, "one per row of h")?;
        }
        Ok(n)
    }

    /// One PALM training step (SPEC §3) on the raw rows `h` (`n x dim`) with their labels
    /// (`None`: unsupervised PALM): moves the prototypes and returns the losses and dL/dh.
    /// On error the bank is unchanged. Errors: SHAPE (slice lengths), INVALID_ARG (empty batch),
    /// NONFINITE, LABEL, NOMEM.
    ///
    /// ```
    /// let mut bank = protood::Bank::new(2, 2, 3)?;
    /// let step = bank.palm_step(&[1.0, 0.0, 0.0,  0.0, 1.0, 0.5], Some(&[0, 1]))?;
    /// assert!((step.losses.total - (step.losses.mle + step.losses.pcon)).abs() < 1e-9);
    /// # Ok::<(), protood::Error>(())
    /// ```
    pub fn palm_step(&mut self, h: &[f32], labels: Option<&[i32]>) -> Result<PalmStep> {
        const F: &str = "protood::Bank::palm_step";
        let n = self.check_batch(F, h, labels)?;
        let mut losses = [0.0f64; 3];
        let mut grad = vec![0.0f32; h.len()];
        check(unsafe {
            sys::protood_palm_step(self.raw.as_ptr(), to_i64(F, n)?, h.as_ptr(),
                                   labels.map_or(ptr::null(), |l| l.as_ptr()), losses.as_mut_ptr(), grad.as_mut_ptr())
        })?;
        Ok(PalmStep { losses: PalmLosses { total: losses[0], mle: losses[1], pcon: losses[2] }, grad })
    }

    /// A PALM step that only moves the bank (computes neither losses nor gradient).
    pub fn palm_update(&mut self, h: &[f32], labels: Option<&[i32]>) -> Result<()> {
        const F: &str = "protood::Bank::palm_update";
        let n = self.check_batch(F, h, labels)?;
        check(unsafe {
            sys::protood_palm_step(self.raw.as_ptr(), to_i64(F, n)?, h.as_ptr(),
                                   labels.map_or(ptr::null(), |l| l.as_ptr()), ptr::null_mut(), ptr::null_mut())
        })
    }

    /// One CIDER training step (SPEC §4) on the raw rows `h` (`n x dim`) with their labels; the
    /// bank must have one prototype per class (else STATE). Remember CIDER's momentum of 0.5.
    /// On error the bank is unchanged.
    ///
    /// ```
    /// use protood::{Bank, BankParam};
    /// let mut bank = Bank::new(2, 1, 3)?.with_param(BankParam::Momentum, 0.5)?;
    /// let step = bank.cider_step(&[1.0, 0.0, 0.0,  0.0, 1.0, 0.5], &[0, 1])?;
    /// assert!(step.losses.comp > 0.0);
    /// # Ok::<(), protood::Error>(())
    /// ```
    pub fn cider_step(&mut self, h: &[f32], labels: &[i32]) -> Result<CiderStep> {
        const F: &str = "protood::Bank::cider_step";
        let n = self.check_batch(F, h, Some(labels))?;
        let mut losses = [0.0f64; 3];
        let mut grad = vec![0.0f32; h.len()];
        check(unsafe {
            sys::protood_cider_step(self.raw.as_ptr(), to_i64(F, n)?, h.as_ptr(), labels.as_ptr(),
                                    losses.as_mut_ptr(), grad.as_mut_ptr())
        })?;
        Ok(CiderStep { losses: CiderLosses { total: losses[0], comp: losses[1], dis: losses[2] }, grad })
    }

    /// A CIDER step that only moves the bank.
    pub fn cider_update(&mut self, h: &[f32], labels: &[i32]) -> Result<()> {
        const F: &str = "protood::Bank::cider_update";
        let n = self.check_batch(F, h, Some(labels))?;
        check(unsafe {
            sys::protood_cider_step(self.raw.as_ptr(), to_i64(F, n)?, h.as_ptr(), labels.as_ptr(),
                                    ptr::null_mut(), ptr::null_mut())
        })
    }

    /// The PALM loss weights W (`n x P`, class-major columns) of the rows `h` against the bank as
    /// it is (no update): each row's soft responsibilities over its support. Takes `&self`: may
    /// run from several threads at once.
    pub fn palm_assign(&self, h: &[f32], labels: Option<&[i32]>) -> Result<Vec<f32>> {
        const F: &str = "protood::Bank::palm_assign";
        let n = self.check_batch(F, h, labels)?;
        let mut out = vec![0.0f32; mul(F, n, self.n_prototypes())?];
        check(unsafe {
            sys::protood_palm_assign(self.raw.as_ptr(), to_i64(F, n)?, h.as_ptr(),
                                     labels.map_or(ptr::null(), |l| l.as_ptr()), out.as_mut_ptr())
        })?;
        Ok(out)
    }
}
