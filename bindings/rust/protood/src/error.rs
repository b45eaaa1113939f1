//! The library's status codes as a Rust error.
use protood_sys as sys;
use std::ffi::CStr;
use std::fmt;

/// What went wrong, one variant per `PROTOOD_E_*` status code of the C library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `PROTOOD_E_INVALID_ARG`: NULL or empty input, n < 1, unknown key, value out of range.
    InvalidArg,
    /// `PROTOOD_E_NOMEM`: an allocation failed.
    NoMem,
    /// `PROTOOD_E_SHAPE`: a dimension does not match the handle or the file (also a slice whose
    /// length is not what its shape implies, caught on the Rust side), or a size overflows.
    Shape,
    /// `PROTOOD_E_STATE`: the handle is not ready (scoring an unfitted scorer, CIDER with K > 1).
    State,
    /// `PROTOOD_E_NONFINITE`: NaN or Inf in an input, or an all-zero row that cannot be normalised.
    NonFinite,
    /// `PROTOOD_E_LABEL`: a label outside `[0, n_classes)`.
    Label,
    /// `PROTOOD_E_IO`: a file could not be opened, read, written, synced or renamed.
    Io,
    /// `PROTOOD_E_FORMAT`: a file or buffer is malformed, truncated, corrupt or unsupported.
    Format,
    /// `PROTOOD_E_CALLBACK`: a feature callback returned non-zero.
    Callback,
    /// `PROTOOD_E_UNSUPPORTED`: a feature this build of the library does not include, or a
    /// library whose ABI differs from the one these bindings were written for.
    Unsupported,
    /// `PROTOOD_E_INTERNAL`: a bug in libprotood.
    Internal,
    /// A negative code this version of the bindings does not know.
    Unknown,
}

impl ErrorKind {
    /// The kind of a negative status code; `None` for `PROTOOD_OK` and other non-negative values.
    pub fn from_code(code: i32) -> Option<ErrorKind> {
        Some(match code {
            c if c >= 0 => return None,
            sys::PROTOOD_E_INVALID_ARG => ErrorKind::InvalidArg,
            sys::PROTOOD_E_NOMEM => ErrorKind::NoMem,
            sys::PROTOOD_E_SHAPE => ErrorKind::Shape,
            sys::PROTOOD_E_STATE => ErrorKind::State,
            sys::PROTOOD_E_NONFINITE => ErrorKind::NonFinite,
            sys::PROTOOD_E_LABEL => ErrorKind::Label,
            sys::PROTOOD_E_IO => ErrorKind::Io,
            sys::PROTOOD_E_FORMAT => ErrorKind::Format,
            sys::PROTOOD_E_CALLBACK => ErrorKind::Callback,
            sys::PROTOOD_E_UNSUPPORTED => ErrorKind::Unsupported,
            sys::PROTOOD_E_INTERNAL => ErrorKind::Internal,
            _ => ErrorKind::Unknown,
        })
    }

    /// The C status code of this kind (`PROTOOD_E_INTERNAL` for [`ErrorKind::Unknown`]).
    pub fn code(self) -> i32 {
        match self {
            ErrorKind::InvalidArg => sys::PROTOOD_E_INVALID_ARG,
            ErrorKind::NoMem => sys::PROTOOD_E_NOMEM,
            ErrorKind::Shape => sys::PROTOOD_E_SHAPE,
            ErrorKind::State => sys::PROTOOD_E_STATE,
            ErrorKind::NonFinite => sys::PROTOOD_E_NONFINITE,
            ErrorKind::Label => sys::PROTOOD_E_LABEL,
            ErrorKind::Io => sys::PROTOOD_E_IO,
            ErrorKind::Format => sys::PROTOOD_E_FORMAT,
            ErrorKind::Callback => sys::PROTOOD_E_CALLBACK,
            ErrorKind::Unsupported => sys::PROTOOD_E_UNSUPPORTED,
            ErrorKind::Internal | ErrorKind::Unknown => sys::PROTOOD_E_INTERNAL,
        }
    }
}

/// A failed call: its kind, the raw status code and the message naming the function, the
/// argument and the value at fault (the library's `protood_last_error()`, read on the failing
/// thread right after the call; or, for checks the bindings make before calling C, a message of
/// the same form starting with `protood::`).
///
/// ```
/// let mut bank = protood::Bank::new(2, 1, 4).unwrap();
/// let err = bank.set_param(protood::BankParam::Momentum, 1.5).unwrap_err();
/// assert_eq!(err.kind(), protood::ErrorKind::InvalidArg);
/// assert_eq!(err.code(), -1);
/// assert!(err.message().contains("protood_bank_set_param"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    code: i32,
    message: String,
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error for status `code`, with this thread's `protood_last_error()` as its message.
    /// Call it right after the failing call, on the same thread.
    pub(crate) fn from_last(code: i32) -> Error {
        let message = unsafe { cstr_to_string(sys::protood_last_error()) };
        Error { kind: ErrorKind::from_code(code).unwrap_or(ErrorKind::Unknown), code, message }
    }

    /// An error detected by the bindings before calling into C.
    pub(crate) fn new(kind: ErrorKind, message: String) -> Error {
        Error { kind, code: kind.code(), message }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The raw status code (a negative `PROTOOD_E_*`).
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The detailed message: function, argument, value.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, crate::status_string(self.code))
    }
}

impl std::error::Error for Error {}

/// `Ok(())` for `PROTOOD_OK`, else the error with this thread's last message.
pub(crate) fn check(status: i32) -> Result<()> {
    if status == sys::PROTOOD_OK {
        Ok(())
    } else {
        Err(Error::from_last(status))
    }
}

/// Copy of a C string (lossy UTF-8); "" for NULL.
pub(crate) unsafe fn cstr_to_string(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
