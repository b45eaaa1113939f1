//! fit_stream / score_stream with Rust closures: equal to the in-memory calls, batches in order,
//! closure errors reported as such, panics carried across the C frames without unwinding through
//! them, the scorer unchanged after any failure.
mod common;
use common::*;
use protood::{ErrorKind, Scorer, ScorerKind, StreamError};
use std::panic::{catch_unwind, AssertUnwindSafe};

struct Data {
    train: Vec<f32>,
    labels: Vec<i32>,
    test: Vec<f32>,
    dim: usize,
}

fn data() -> Data {
    let c = Case::load("scorers");
    let train = c.f32s("train.npy");
    let test = c.f32s("test.npy");
    Data { dim: train.cols, train: train.data, labels: c.i32s("train_labels.npy"), test: test.data }
}

fn feed<'a>(x: &'a [f32], labels: Option<&'a [i32]>, dim: usize, calls: &'a mut Vec<(usize, usize, bool)>)
            -> impl FnMut(usize, usize, &mut [f32], Option<&mut [i32]>) -> Result<(), String> + 'a {
    move |first, count, rows, out_labels| {
        calls.push((first, count, out_labels.is_some()));
        assert_eq!(rows.len(), count * dim);
        rows.copy_from_slice(&x[first * dim..(first + count) * dim]);
        if let (Some(out), Some(l)) = (out_labels, labels) {
            out.copy_from_slice(&l[first..first + count]);
        }
        Ok(())
    }
}

#[test]
fn streamed_fits_and_scores_equal_the_in_memory_ones() {
    let d = data();
    let n = d.train.len() / d.dim;
    let m = d.test.len() / d.dim;
    for kind in [ScorerKind::Knn, ScorerKind::Mahalanobis, ScorerKind::Ssd, ScorerKind::Prototype] {
        let labels = if kind == ScorerKind::Mahalanobis { Some(&d.labels[..]) } else { None };
        let mut direct = Scorer::new(kind, d.dim).unwrap();
        direct.fit(&d.train, labels, 5).unwrap();
        let want = direct.score(&d.test).unwrap();
        for batch in [1usize, 7, 64, n + 10] {
            let mut streamed = Scorer::new(kind, d.dim).unwrap();
            let mut calls = Vec::new();
            streamed.fit_stream(n, batch, 5, feed(&d.train, labels, d.dim, &mut calls)).unwrap();
            // Rows [0, batch), [batch, 2 batch), ..., each once, in order; labels only for Mahalanobis.
            let mut next = 0;
            for (first, count, with_labels) in &calls {
                assert_eq!(*first, next);
                assert_eq!(*count, batch.min(n - next));
                assert_eq!(*with_labels, kind == ScorerKind::Mahalanobis);
                next += count;
            }
            assert_eq!(next, n);
            assert_eq!(streamed.score(&d.test).unwrap(), want, "{:?} fit in batches of {}", kind, batch);

            let mut calls = Vec::new();
            let scores = streamed.score_stream(m, batch, feed(&d.test, None, d.dim, &mut calls)).unwrap();
            assert_eq!(scores, want, "{:?} scored in batches of {}", kind, batch);
            assert!(calls.iter().all(|c| !c.2), "no labels asked when scoring");
        }
    }
}

#[test]
fn a_closure_error_aborts_and_leaves_the_scorer_unchanged() {
    let d = data();
    let n = d.train.len() / d.dim;
    let mut knn = Scorer::new(ScorerKind::Knn, d.dim).unwrap();
    knn.set_k(5).unwrap();
    knn.fit(&d.train[..200 * d.dim], None, 0).unwrap();
    let before = knn.score(&d.test).unwrap();

    let mut seen = 0;
    let r = knn.fit_stream(n, 50, 0, |first, _count, rows, _| {
        seen += 1;
        rows.iter_mut().for_each(|v| *v = 1.0);
        if first >= 100 {
            Err(format!("disk gone at row {}", first))
        } else {
            Ok(())
        }
    });
    match r {
        Err(StreamError::Callback { first, error }) => {
            assert_eq!(first, 100);
            assert_eq!(error, "disk gone at row 100");
        }
        other => panic!("expected the closure's error, got {:?}", other),
    }
    assert_eq!(seen, 3, "no call after the failing one");
    assert_eq!(knn.score(&d.test).unwrap(), before, "the previous fit is intact");

    // Scoring: the closure's error, outputs not produced, the scorer still scores.
    let r = knn.score_stream(10, 4, |first, _, rows, _| -> Result<(), std::io::Error> {
        rows.copy_from_slice(&d.test[first * d.dim..(first + rows.len() / d.dim) * d.dim]);
        if first == 8 {
            Err(std::io::Error::new(std::io::ErrorKind::Other, "camera unplugged"))
        } else {
            Ok(())
        }
    });
    let e = r.unwrap_err();
    assert!(e.to_string().contains("camera unplugged") && e.to_string().contains("row 8"), "{}", e);
    assert_eq!(knn.score(&d.test).unwrap(), before);
}

#[test]
fn bad_rows_from_the_closure_are_library_errors() {
    let d = data();
    let mut ssd = Scorer::new(ScorerKind::Ssd, d.dim).unwrap();
    let r = ssd.fit_stream(20, 8, 0, |first, _, rows, _| -> Result<(), ()> {
        rows.iter_mut().enumerate().for_each(|(i, v)| *v = (first * 31 + i) as f32 % 5.0 + 0.5);
        if first == 16 {
            rows[3] = f32::NAN;
        }
        Ok(())
    });
    match r {
        Err(StreamError::Library(e)) => {
            assert_eq!(e.kind(), ErrorKind::NonFinite);
            assert!(e.message().contains("protood_scorer_fit_stream"), "{}", e.message());
        }
        other => panic!("expected NONFINITE, got {:?}", other),
    }
    assert_eq!(ssd.score(&d.test).unwrap_err().kind(), ErrorKind::State, "still unfitted");

    // Labels out of range in a Mahalanobis stream.
    let mut maha = Scorer::new(ScorerKind::Mahalanobis, d.dim).unwrap();
    let r = maha.fit_stream(d.labels.len(), 100, 5, |first, count, rows, labels| -> Result<(), ()> {
        rows.copy_from_slice(&d.train[first * d.dim..(first + count) * d.dim]);
        let labels = labels.expect("Mahalanobis asks for labels");
        labels.copy_from_slice(&d.labels[first..first + count]);
        if first == 200 {
            labels[1] = 9;
        }
        Ok(())
    });
    match r {
        Err(StreamError::Library(e)) => assert_eq!(e.kind(), ErrorKind::Label, "{}", e),
        other => panic!("expected LABEL, got {:?}", other),
    }
    // Bad arguments never reach the closure.
    let r = maha.fit_stream(10, 0, 5, |_, _, _, _| -> Result<(), ()> { panic!("must not be called") });
    match r {
        Err(StreamError::Library(e)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArg);
            assert!(e.message().contains("batch"), "{}", e.message());
        }
        other => panic!("expected INVALID_ARG, got {:?}", other),
    }
}

#[test]
fn a_panicking_closure_does_not_unwind_through_c_and_resumes_after() {
    let d = data();
    let mut knn = Scorer::new(ScorerKind::Knn, d.dim).unwrap();
    knn.set_k(3).unwrap();
    knn.fit(&d.train, None, 0).unwrap();
    let before = knn.score(&d.test).unwrap();

    let mut calls = 0;
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _ = knn.fit_stream(100, 10, 0, |first, _, rows, _| -> Result<(), ()> {
            calls += 1;
            rows.iter_mut().for_each(|v| *v = 1.0 + first as f32);
            if first == 30 {
                panic!("model crashed on batch {}", first);
            }
            Ok(())
        });
    }));
    let payload = caught.expect_err("the closure's panic reaches the caller");
    let msg = payload.downcast_ref::<String>().cloned().unwrap_or_default();
    assert_eq!(msg, "model crashed on batch 30");
    assert_eq!(calls, 4, "the library stopped at the panicking batch");
    assert_eq!(knn.score(&d.test).unwrap(), before, "the scorer is as before");

    let m = d.test.len() / d.dim;
    let caught = catch_unwind(AssertUnwindSafe(|| {
        knn.score_stream(m, 16, |_, _, _, _| -> Result<(), ()> { std::panic::panic_any(42u32) })
    }));
    assert_eq!(caught.expect_err("panic").downcast_ref::<u32>(), Some(&42));
    // The library is fine afterwards, on this thread too.
    assert_eq!(knn.score(&d.test).unwrap(), before);
    assert_eq!(protood::sinkhorn(&[0.0, 1.0], 2, 0.05, 3).unwrap().len(), 2);
}
