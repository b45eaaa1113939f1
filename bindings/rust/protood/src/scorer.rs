//! Scorers and the streaming (callback) interface.
use crate::bank::Bank;
use crate::error::{check, Error, ErrorKind, Result};
use crate::{c_path, expect_len, rows_of, sys, to_i64};
use std::any::Any;
use std::fmt;
use std::os::raw::c_void;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::ptr::{self, NonNull};

/// Kind of scorer (SPEC §6). Every score is higher for more in-distribution rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScorerKind {
    /// Minus the squared distance to the k-th nearest (normalised) training row.
    Knn,
    /// Class-conditional Mahalanobis with a tied covariance (needs labels to fit).
    Mahalanobis,
    /// A single Gaussian on standardised features.
    Ssd,
    /// Maximum cosine to the prototypes of a bank (or to the fitted rows).
    Prototype,
}

impl ScorerKind {
    /// The C constant (`PROTOOD_SCORER_*`).
    pub fn code(self) -> i32 {
        match self {
            ScorerKind::Knn => sys::PROTOOD_SCORER_KNN,
            ScorerKind::Mahalanobis => sys::PROTOOD_SCORER_MAHALANOBIS,
            ScorerKind::Ssd => sys::PROTOOD_SCORER_SSD,
            ScorerKind::Prototype => sys::PROTOOD_SCORER_PROTOTYPE,
        }
    }

    /// The kind of a C constant, `None` if unknown.
    pub fn from_code(code: i32) -> Option<ScorerKind> {
        match code {
            sys::PROTOOD_SCORER_KNN => Some(ScorerKind::Knn),
            sys::PROTOOD_SCORER_MAHALANOBIS => Some(ScorerKind::Mahalanobis),
            sys::PROTOOD_SCORER_SSD => Some(ScorerKind::Ssd),
            sys::PROTOOD_SCORER_PROTOTYPE => Some(ScorerKind::Prototype),
            _ => None,
        }
    }
}

/// Scorer parameters (the `PROTOOD_SCORER_*` keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScorerParam {
    /// KNN's k, integer `>= 1`, default 50 (ignored by the other kinds).
    K,
    /// 1 (default): L2-normalise every input row first; 0: use rows as given.
    Normalize,
}

impl ScorerParam {
    /// The C key.
    pub fn key(self) -> i32 {
        match self {
            ScorerParam::K => sys::PROTOOD_SCORER_K,
            ScorerParam::Normalize => sys::PROTOOD_SCORER_NORMALIZE,
        }
    }
}

/// Error of [`Scorer::fit_stream`] and [`Scorer::score_stream`]: the library's, or the one the
/// caller's closure returned (the library then aborted the call with `PROTOOD_E_CALLBACK` and
/// left the scorer unchanged).
#[derive(Debug)]
pub enum StreamError<E> {
    /// The library failed (including a bad shape of what the closure supplied, e.g. NaN rows).
    Library(Error),
    /// The closure returned this error for the batch starting at row `first`.
    Callback {
        /// First row of the failing batch.
        first: usize,
        /// The closure's error.
        error: E,
    },
}

impl<E> From<Error> for StreamError<E> {
    fn from(e: Error) -> Self {
        StreamError::Library(e)
    }
}

impl<E: fmt::Display> fmt::Display for StreamError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Library(e) => e.fmt(f),
            StreamError::Callback { first, error } => write!(f, "feature callback failed at row {}: {}", first, error),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for StreamError<E> {}

/// A fitted-once, score-many OOD scorer (`protood_scorer`), freed on drop.
///
/// `Send` and `Sync`: the C contract lets a scorer move between threads, and scoring, reading
/// parameters and saving (all `&self` here) may run on the same scorer from any number of
/// threads at once. Fitting and setting parameters take `&mut self`.
///
/// ```
/// use protood::{Scorer, ScorerKind};
/// let train = [1.0, 0.0,  0.9, 0.1,  0.8, 0.3,  0.0, 1.0];
/// let mut knn = Scorer::new(ScorerKind::Knn, 2)?;
/// knn.set_k(2)?;
/// knn.fit(&train, None, 0)?;
/// let s = knn.score(&[1.0, 0.05,  -1.0, 0.0])?;
/// assert!(s[0] > s[1]); // the first query lies among the training rows
/// # Ok::<(), protood::Error>(())
/// ```
pub struct Scorer {
    raw: NonNull<sys::protood_scorer>,
    kind: ScorerKind,
    dim: usize,
}

// SAFETY: see the type's documentation (docs/conventions.md, "Threading contract").
unsafe impl Send for Scorer {}
unsafe impl Sync for Scorer {}

impl Drop for Scorer {
    fn drop(&mut self) {
        unsafe { sys::protood_scorer_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Scorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scorer").field("kind", &self.kind).field("dim", &self.dim).finish()
    }
}

/// State the trampoline reaches through `void *user`.
struct StreamState<'a, F, E> {
    f: &'a mut F,
    dim: usize,
    error: Option<(usize, E)>,
    panic: Option<Box<dyn Any + Send + 'static>>,
}

/// The C callback: runs the closure on the batch and never lets a panic unwind into C (it is
/// caught, stored and resumed once the library has returned).
unsafe extern "C" fn trampoline<F, E>(user: *mut c_void, first: i64, count: i64, rows_out: *mut f32,
                                      labels_out: *mut i32) -> i32
where
    F: FnMut(usize, usize, &mut [f32], Option<&mut [i32]>) -> std::result::Result<(), E>,
{
    let state = &mut *(user as *mut StreamState<'_, F, E>);
    if state.error.is_some() || state.panic.is_some() || rows_out.is_null() || first < 0 || count < 1 {
        return -1;
    }
    let (first, count) = (first as usize, count as usize);
    let len = match count.checked_mul(state.dim) {
        Some(len) => len,
        None => return -1,
    };
    // The library's buffer may be uninitialised: zero it before handing it out as a slice.
    ptr::write_bytes(rows_out, 0, len);
    let rows = std::slice::from_raw_parts_mut(rows_out, len);
    let labels = if labels_out.is_null() {
        None
    } else {
        ptr::write_bytes(labels_out, 0, count);
        Some(std::slice::from_raw_parts_mut(labels_out, count))
    };
    let f = &mut *state.f;
    match panic::catch_unwind(AssertUnwindSafe(|| f(first, count, rows, labels))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            state.error = Some((first, e));
            1
        }
        Err(payload) => {
            state.panic = Some(payload);
            2
        }
    }
}

impl Scorer {
    fn from_raw(raw: *mut sys::protood_scorer, kind: ScorerKind, dim: usize) -> Result<Scorer> {
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::Internal, "protood::Scorer: library returned NULL".into()))?;
        Ok(Scorer { raw, kind, dim })
    }

    /// Take a loaded scorer, asking the library for its kind and dimension.
    fn adopt_loaded(raw: *mut sys::protood_scorer, func: &str) -> Result<Scorer> {
        let mut s = Scorer::from_raw(raw, ScorerKind::Knn, 1)?;
        let (mut kind, mut dim) = (0i32, 0i64);
        check(unsafe { sys::protood_scorer_info(s.raw.as_ptr(), &mut kind, &mut dim, ptr::null_mut()) })?;
        s.kind = ScorerKind::from_code(kind)
            .ok_or_else(|| Error::new(ErrorKind::Format, format!("{}: unknown scorer kind {}", func, kind)))?;
        s.dim = dim as usize;
        Ok(s)
    }

    /// New unfitted scorer of `kind` for rows of `dim` features, default parameters.
    /// Errors: INVALID_ARG (dim 0), SHAPE (dim too large), NOMEM.
    pub fn new(kind: ScorerKind, dim: usize) -> Result<Scorer> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::protood_scorer_create(&mut raw, kind.code(), to_i64("protood::Scorer::new", dim)?) })?;
        Scorer::from_raw(raw, kind, dim)
    }

    /// The scorer's kind.
    pub fn kind(&self) -> ScorerKind {
        self.kind
    }

    /// Features per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The raw handle, for calls into [`sys`](crate::sys) (valid while `self` lives; do not free).
    pub fn as_ptr(&self) -> *const sys::protood_scorer {
        self.raw.as_ptr()
    }

    /// Set a parameter. Errors: INVALID_ARG (out of range, fractional; K above the training rows
    /// of a fitted KNN scorer), STATE (NORMALIZE after fit). The old value stays on failure.
    pub fn set_param(&mut self, key: ScorerParam, value: f64) -> Result<()> {
        check(unsafe { sys::protood_scorer_set_param(self.raw.as_ptr(), key.key(), value) })
    }

    /// Read a parameter.
    pub fn param(&self, key: ScorerParam) -> Result<f64> {
        let mut v = 0.0;
        check(unsafe { sys::protood_scorer_get_param(self.raw.as_ptr(), key.key(), &mut v) })?;
        Ok(v)
    }

    /// Set KNN's k (`>= 1`).
    pub fn set_k(&mut self, k: usize) -> Result<()> {
        self.set_param(ScorerParam::K, k as f64)
    }

    /// KNN's k.
    pub fn k(&self) -> Result<usize> {
        Ok(self.param(ScorerParam::K)? as usize)
    }

    /// Switch the L2-normalisation of input rows (before fitting).
    pub fn set_normalize(&mut self, on: bool) -> Result<()> {
        self.set_param(ScorerParam::Normalize, if on { 1.0 } else { 0.0 })
    }

    /// Whether input rows are L2-normalised first.
    pub fn normalize(&self) -> Result<bool> {
        Ok(self.param(ScorerParam::Normalize)? != 0.0)
    }

    /// Fit to training rows `x` (`n x dim`). Mahalanobis needs `labels` (`n` values in
    /// `[0, n_classes)`, every class present); the other kinds take `None, 0`. A failed refit
    /// leaves the previous fit in place. Errors: SHAPE (slice lengths), INVALID_ARG, NONFINITE,
    /// LABEL, NOMEM, INTERNAL.
    pub fn fit(&mut self, x: &[f32], labels: Option<&[i32]>, n_classes: usize) -> Result<()> {
        const F: &str = "protood::Scorer::fit";
        let n = rows_of(F, "x", x.len(), self.dim)?;
        if let Some(l) = labels {
            expect_len(F, "labels", l.len(), n, "one per row of x")?;
        }
        check(unsafe {
            sys::protood_scorer_fit(self.raw.as_ptr(), to_i64(F, n)?, x.as_ptr(),
                                    labels.map_or(ptr::null(), |l| l.as_ptr()), to_i64(F, n_classes)?)
        })
    }

    /// Fit a [`ScorerKind::Prototype`] scorer to the prototypes of `bank` (copied). Errors: STATE
    /// (another kind), SHAPE (bank dim differs), NOMEM.
    pub fn fit_bank(&mut self, bank: &Bank) -> Result<()> {
        check(unsafe { sys::protood_scorer_fit_bank(self.raw.as_ptr(), bank.as_ptr()) })
    }

    /// Score query rows `q` (`m x dim`): one score per row, higher = more in-distribution.
    /// Errors: SHAPE (length), INVALID_ARG (empty), STATE (not fitted), NONFINITE, NOMEM.
    /// Takes `&self`: call it from as many threads as you like.
    pub fn score(&self, q: &[f32]) -> Result<Vec<f32>> {
        let m = rows_of("protood::Scorer::score", "q", q.len(), self.dim)?;
        let mut out = vec![0.0f32; m];
        self.score_into(q, &mut out)?;
        Ok(out)
    }

    /// [`Scorer::score`] into a caller's slice of one score per row of `q` (untouched on error).
    pub fn score_into(&self, q: &[f32], scores: &mut [f32]) -> Result<()> {
        const F: &str = "protood::Scorer::score_into";
        let m = rows_of(F, "q", q.len(), self.dim)?;
        expect_len(F, "scores", scores.len(), m, "one per row of q")?;
        check(unsafe { sys::protood_scorer_score(self.raw.as_ptr(), to_i64(F, m)?, q.as_ptr(), scores.as_mut_ptr()) })
    }

    /// Save to `path` atomically (fitted or not). Errors: IO, NOMEM.
    pub fn save<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        let path = c_path("protood::Scorer::save", path.as_ref())?;
        check(unsafe { sys::protood_scorer_save(self.raw.as_ptr(), path.as_ptr()) })
    }

    /// Load a scorer saved by [`Scorer::save`]; it scores bit for bit as the saved one.
    /// Errors: IO, FORMAT, NOMEM.
    ///
    /// ```
    /// use protood::{Scorer, ScorerKind};
    /// let path = std::env::temp_dir().join(format!("protood-doc-scorer-{}.bin", std::process::id()));
    /// let mut ssd = Scorer::new(ScorerKind::Ssd, 3)?;
    /// ssd.fit(&[1.0, 0.0, 0.2,  0.7, 0.3, 0.0,  0.2, 0.9, 0.1,  0.1, 0.2, 1.0], None, 0)?;
    /// ssd.save(&path)?;
    /// let back = Scorer::load(&path)?;
    /// assert_eq!((back.kind(), back.dim()), (ScorerKind::Ssd, 3));
    /// let q = [0.5, 0.5, 0.1];
    /// assert_eq!(back.score(&q)?, ssd.score(&q)?);
    /// std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), protood::Error>(())
    /// ```
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Scorer> {
        const F: &str = "protood::Scorer::load";
        let path = c_path(F, path.as_ref())?;
        let mut raw = ptr::null_mut();
        check(unsafe { sys::protood_scorer_load(&mut raw, path.as_ptr()) })?;
        Scorer::adopt_loaded(raw, F)
    }

    /// The scorer in the file format, as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut size = 0usize;
        check(unsafe { sys::protood_scorer_to_buffer(self.raw.as_ptr(), ptr::null_mut(), 0, &mut size) })?;
        let mut buf = vec![0u8; size];
        check(unsafe {
            sys::protood_scorer_to_buffer(self.raw.as_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut size)
        })?;
        buf.truncate(size);
        Ok(buf)
    }

    /// A scorer from bytes of [`Scorer::to_bytes`] or a file of [`Scorer::save`].
    /// Errors: INVALID_ARG, FORMAT, NOMEM.
    pub fn from_bytes(bytes: &[u8]) -> Result<Scorer> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::protood_scorer_from_buffer(&mut raw, bytes.as_ptr().cast(), bytes.len()) })?;
        Scorer::adopt_loaded(raw, "protood::Scorer::from_bytes")
    }

    /// Run a streaming C call with `f` behind the trampoline; map the outcome.
    fn run_stream<F, E>(&self, f: &mut F, call: impl FnOnce(sys::protood_feature_fn, *mut c_void) -> i32)
                        -> std::result::Result<(), StreamError<E>>
    where
        F: FnMut(usize, usize, &mut [f32], Option<&mut [i32]>) -> std::result::Result<(), E>,
    {
        let mut state = StreamState { f, dim: self.dim, error: None, panic: None };
        let status = call(Some(trampoline::<F, E>), &mut state as *mut StreamState<'_, F, E> as *mut c_void);
        // Read the library's message before anything else can call into it on this thread.
        let result = if status == sys::PROTOOD_OK { Ok(()) } else { Err(Error::from_last(status)) };
        if let Some(payload) = state.panic.take() {
            // The library has returned and cleaned up; continue the closure's panic here.
            panic::resume_unwind(payload);
        }
        if let Some((first, error)) = state.error.take() {
            return Err(StreamError::Callback { first, error });
        }
        result.map_err(StreamError::Library)
    }

    /// [`Scorer::fit`] on `n` rows pulled in batches of `batch` from the closure
    /// `f(first, count, rows, labels)`, which fills `rows` (`count x dim`) and, for a
    /// Mahalanobis fit, `labels` (`Some`, `count` values). Each row is asked for once, in order.
    ///
    /// If the closure returns `Err(e)`, the fit stops, the scorer is unchanged and the result is
    /// [`StreamError::Callback`]; if it panics, the panic is caught before it reaches C and
    /// resumed here once the library has returned (the scorer again unchanged).
    ///
    /// ```
    /// use protood::{Scorer, ScorerKind};
    /// let data: Vec<f32> = (0..40).map(|i| ((i * 7919) % 13) as f32 + 1.0).collect(); // 10 x 4
    /// let mut ssd = Scorer::new(ScorerKind::Ssd, 4)?;
    /// ssd.fit_stream(10, 3, 0, |first, count, rows, _labels| -> Result<(), std::convert::Infallible> {
    ///     rows.copy_from_slice(&data[first * 4..(first + count) * 4]);
    ///     Ok(())
    /// })?;
    /// let mut direct = Scorer::new(ScorerKind::Ssd, 4)?;
    /// direct.fit(&data, None, 0)?;
    /// assert_eq!(ssd.score(&data)?, direct.score(&data)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fit_stream<F, E>(&mut self, n: usize, batch: usize, n_classes: usize, mut f: F)
                            -> std::result::Result<(), StreamError<E>>
    where
        F: FnMut(usize, usize, &mut [f32], Option<&mut [i32]>) -> std::result::Result<(), E>,
    {
        const FN: &str = "protood::Scorer::fit_stream";
        let (n, batch, n_classes) = (to_i64(FN, n)?, to_i64(FN, batch)?, to_i64(FN, n_classes)?);
        let raw = self.raw.as_ptr();
        self.run_stream(&mut f, |cb, user| unsafe { sys::protood_scorer_fit_stream(raw, n, batch, cb, user, n_classes) })
    }

    /// [`Scorer::score`] on `m` rows pulled in batches of `batch` from the closure
    /// `f(first, count, rows, None)`. Scores equal those of [`Scorer::score`] bit for bit.
    /// Errors and panics of the closure as for [`Scorer::fit_stream`]. Takes `&self`.
    pub fn score_stream<F, E>(&self, m: usize, batch: usize, mut f: F) -> std::result::Result<Vec<f32>, StreamError<E>>
    where
        F: FnMut(usize, usize, &mut [f32], Option<&mut [i32]>) -> std::result::Result<(), E>,
    {
        const FN: &str = "protood::Scorer::score_stream";
        let (mi, batch) = (to_i64(FN, m)?, to_i64(FN, batch)?);
        let mut out = vec![0.0f32; m];
        let out_ptr = out.as_mut_ptr();
        let raw = self.raw.as_ptr();
        self.run_stream(&mut f, |cb, user| unsafe { sys::protood_scorer_score_stream(raw, mi, batch, cb, user, out_ptr) })?;
        Ok(out)
    }
}
