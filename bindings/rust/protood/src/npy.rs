//! NumPy `.npy` feature files through the library's reader and writer (versions 1.0–3.0,
//! float32/float64/float16/int32/int64, either byte order, C or Fortran order; writes are atomic).
//!
//! ```
//! let path = std::env::temp_dir().join(format!("protood-doc-{}.npy", std::process::id()));
//! protood::npy::write_f32(&path, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
//! let info = protood::npy::info(&path)?;
//! assert_eq!((info.dtype, info.rows, info.cols), (protood::npy::Dtype::F32, 2, 3));
//! let a = protood::npy::read_f64(&path)?;
//! assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
//! std::fs::remove_file(&path).unwrap();
//! # Ok::<(), protood::Error>(())
//! ```
use crate::error::{check, Error, ErrorKind, Result};
use crate::{c_path, expect_len, mul, sys, to_i64};
use std::path::Path;

/// Element type of a `.npy` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// float32
    F32,
    /// float64
    F64,
    /// float16
    F16,
    /// int32
    I32,
    /// int64
    I64,
}

/// Shape and element type of a `.npy` file (1-D files have `cols = 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Info {
    /// Element type in the file.
    pub dtype: Dtype,
    /// Rows (the length of a 1-D array).
    pub rows: usize,
    /// Columns (1 for a 1-D array).
    pub cols: usize,
}

/// A row-major matrix read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Array<T> {
    /// `rows x cols` values, row-major.
    pub data: Vec<T>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// Shape and dtype without reading the data. Errors: IO, FORMAT.
pub fn info<P: AsRef<Path>>(path: P) -> Result<Info> {
    const F: &str = "protood::npy::info";
    let cpath = c_path(F, path.as_ref())?;
    let (mut dtype, mut rows, mut cols) = (0i32, 0i64, 0i64);
    check(unsafe { sys::protood_npy_info(cpath.as_ptr(), &mut dtype, &mut rows, &mut cols) })?;
    let dtype = match dtype {
        sys::PROTOOD_DTYPE_F32 => Dtype::F32,
        sys::PROTOOD_DTYPE_F64 => Dtype::F64,
        sys::PROTOOD_DTYPE_F16 => Dtype::F16,
        sys::PROTOOD_DTYPE_I32 => Dtype::I32,
        sys::PROTOOD_DTYPE_I64 => Dtype::I64,
        other => return Err(Error::new(ErrorKind::Unsupported, format!("{}: unknown dtype code {}", F, other))),
    };
    Ok(Info { dtype, rows: rows as usize, cols: cols as usize })
}

/// Read a whole file as float32 (converting). Errors: IO, FORMAT (e.g. a float64 beyond the
/// float32 range), SHAPE (the file changed between reading its shape and its data), NOMEM.
pub fn read_f32<P: AsRef<Path>>(path: P) -> Result<Array<f32>> {
    const F: &str = "protood::npy::read_f32";
    let i = info(path.as_ref())?;
    let cpath = c_path(F, path.as_ref())?;
    let mut data = vec![0.0f32; mul(F, i.rows, i.cols)?];
    check(unsafe { sys::protood_npy_read_f32(cpath.as_ptr(), to_i64(F, i.rows)?, to_i64(F, i.cols)?, data.as_mut_ptr()) })?;
    Ok(Array { data, rows: i.rows, cols: i.cols })
}

/// Read a whole file as float64 (exact except int64 beyond 2^53).
pub fn read_f64<P: AsRef<Path>>(path: P) -> Result<Array<f64>> {
    const F: &str = "protood::npy::read_f64";
    let i = info(path.as_ref())?;
    let cpath = c_path(F, path.as_ref())?;
    let mut data = vec![0.0f64; mul(F, i.rows, i.cols)?];
    check(unsafe { sys::protood_npy_read_f64(cpath.as_ptr(), to_i64(F, i.rows)?, to_i64(F, i.cols)?, data.as_mut_ptr()) })?;
    Ok(Array { data, rows: i.rows, cols: i.cols })
}

/// Read integer labels from a 1-D file (or `n x 1`) of int32 or int64. Floating-point files are
/// FORMAT errors (labels are never guessed from floats).
pub fn read_i32<P: AsRef<Path>>(path: P) -> Result<Vec<i32>> {
    const F: &str = "protood::npy::read_i32";
    let i = info(path.as_ref())?;
    let cpath = c_path(F, path.as_ref())?;
    // A file of more than one column goes to the library with n = rows, which it rejects.
    let mut data = vec![0i32; i.rows];
    check(unsafe { sys::protood_npy_read_i32(cpath.as_ptr(), to_i64(F, i.rows)?, data.as_mut_ptr()) })?;
    Ok(data)
}

/// Write a `rows x cols` float32 matrix as a 2-D file, atomically. Errors: SHAPE
/// (`data.len() != rows x cols`), INVALID_ARG (cols 0), IO.
pub fn write_f32<P: AsRef<Path>>(path: P, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    const F: &str = "protood::npy::write_f32";
    expect_len(F, "data", data.len(), mul(F, rows, cols)?, "rows x cols")?;
    let cpath = c_path(F, path.as_ref())?;
    check(unsafe { sys::protood_npy_write_f32(cpath.as_ptr(), to_i64(F, rows)?, to_i64(F, cols)?, data.as_ptr()) })
}

/// Write float32 values as a 1-D file, atomically.
pub fn write_f32_vector<P: AsRef<Path>>(path: P, data: &[f32]) -> Result<()> {
    const F: &str = "protood::npy::write_f32_vector";
    let cpath = c_path(F, path.as_ref())?;
    check(unsafe { sys::protood_npy_write_f32_vector(cpath.as_ptr(), to_i64(F, data.len())?, data.as_ptr()) })
}

/// Write int32 values (labels) as a 1-D file, atomically.
pub fn write_i32<P: AsRef<Path>>(path: P, data: &[i32]) -> Result<()> {
    const F: &str = "protood::npy::write_i32";
    let cpath = c_path(F, path.as_ref())?;
    check(unsafe { sys::protood_npy_write_i32(cpath.as_ptr(), to_i64(F, data.len())?, data.as_ptr()) })
}
