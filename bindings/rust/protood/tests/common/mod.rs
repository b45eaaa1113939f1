//! Shared by the integration tests: the reference cases of ../shared/fixtures, read through the
//! library's own .npy reader, and the tolerances of SPEC.md §8.
#![allow(dead_code)]
use std::collections::HashMap;
use std::path::PathBuf;

/// `$PROTOOD_FIXTURES`, else the `shared/fixtures` beside the repository.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("PROTOOD_FIXTURES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/fixtures"),
    }
}

pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub params: HashMap<String, String>,
}

impl Case {
    pub fn load(name: &str) -> Case {
        let dir = fixtures_dir().join(name);
        let text = std::fs::read_to_string(dir.join("params.txt"))
            .unwrap_or_else(|e| panic!("{}/params.txt: {} (set PROTOOD_FIXTURES)", dir.display(), e));
        let params = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Case { name: name.to_string(), dir, params }
    }

    pub fn f(&self, key: &str) -> f64 {
        self.params
            .get(key)
            .unwrap_or_else(|| panic!("{}: no {} in params.txt", self.name, key))
            .parse()
            .unwrap()
    }

    pub fn u(&self, key: &str) -> usize {
        self.f(key) as usize
    }

    pub fn has(&self, file: &str) -> bool {
        self.dir.join(file).exists()
    }

    pub fn f32s(&self, file: &str) -> protood::npy::Array<f32> {
        protood::npy::read_f32(self.dir.join(file)).unwrap_or_else(|e| panic!("{}/{}: {}", self.name, file, e))
    }

    pub fn f64s(&self, file: &str) -> protood::npy::Array<f64> {
        protood::npy::read_f64(self.dir.join(file)).unwrap_or_else(|e| panic!("{}/{}: {}", self.name, file, e))
    }

    pub fn i32s(&self, file: &str) -> Vec<i32> {
        protood::npy::read_i32(self.dir.join(file)).unwrap_or_else(|e| panic!("{}/{}: {}", self.name, file, e))
    }
}

/// Every fixture folder whose name starts with `prefix`.
pub fn cases(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory (set PROTOOD_FIXTURES)")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Losses: relative 1e-5 (an expected 0 must come out as 0 to 1e-12).
pub fn assert_loss(what: &str, got: f64, want: f64) {
    let tol = 1e-5 * want.abs().max(1e-7);
    assert!((got - want).abs() <= tol, "{}: {} vs expected {} (tolerance {})", what, got, want, tol);
}

/// Gradients, prototypes, assignments: absolute `tol` per element, scaled by the largest expected
/// magnitude when that exceeds 1.
pub fn assert_close_scaled(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{}: length", what);
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol * scale, "{}[{}] = {}, expected {} (tolerance {})", what, i, g, w,
                tol * scale);
    }
}

/// Scores: relative 1e-4 per element.
pub fn assert_close_relative(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{}: length", what);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol * w.abs(), "{}[{}] = {}, expected {} (relative tolerance {})", what, i,
                g, w, tol);
    }
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

/// A unique scratch path in the system temporary directory.
pub fn temp_path(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!("protood-rs-{}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), tag))
}
