//! Error paths: each failure gives the right kind, a message naming the function and the
//! argument, and leaves the handle exactly as it was.
mod common;
use common::*;
use protood::{metrics, npy, Bank, BankParam, ErrorKind, FprConvention, Positive, Scorer, ScorerKind, ScorerParam};

fn assert_err<T: std::fmt::Debug>(r: protood::Result<T>, kind: ErrorKind, needles: &[&str]) -> protood::Error {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind(), kind, "{}", e);
    assert_eq!(protood::ErrorKind::from_code(e.code()), Some(kind));
    for n in needles {
        assert!(e.message().contains(n), "message {:?} does not mention {:?}", e.message(), n);
    }
    e
}

fn snapshot(bank: &Bank) -> (Vec<u32>, Vec<f64>) {
    let protos = bank.prototypes().iter().map(|v| v.to_bits()).collect();
    let params = BankParam::ALL.iter().map(|k| bank.param(*k).unwrap()).collect();
    (protos, params)
}

fn small_batch() -> (Vec<f32>, Vec<i32>) {
    let h = vec![1.0, 0.2, 0.0, 0.1, 0.9, 0.1, 0.1, 0.0, 0.0, 0.1, 1.0, 0.3, 0.1, 0.0, 0.8, 0.2, 0.5, 0.5, 0.5, 0.5];
    (h, vec![0, 0, 1, 1, 2])
}

#[test]
fn status_codes_map_to_kinds_and_texts() {
    let all = [
        (-1, ErrorKind::InvalidArg), (-2, ErrorKind::NoMem), (-3, ErrorKind::Shape), (-4, ErrorKind::State),
        (-5, ErrorKind::NonFinite), (-6, ErrorKind::Label), (-7, ErrorKind::Io), (-8, ErrorKind::Format),
        (-9, ErrorKind::Callback), (-10, ErrorKind::Unsupported), (-99, ErrorKind::Internal),
    ];
    for (code, kind) in all {
        assert_eq!(ErrorKind::from_code(code), Some(kind));
        assert_eq!(kind.code(), code);
        assert_ne!(protood::status_string(code), protood::status_string(12345), "{}", code);
    }
    assert_eq!(ErrorKind::from_code(0), None);
    assert_eq!(ErrorKind::from_code(-42), Some(ErrorKind::Unknown));
    assert_eq!(protood::status_string(-1), "invalid argument");
}

#[test]
fn version_and_abi() {
    protood::check_abi().unwrap();
    assert_eq!(protood::abi_version(), protood::ABI_VERSION);
    assert_eq!(protood::version_number(), protood::VERSION_NUMBER);
    assert_eq!(protood::version(), protood::sys::PROTOOD_VERSION_STRING);
    assert!(protood::build_info().contains("blas="), "{}", protood::build_info());
}

#[test]
fn bank_create_and_params() {
    assert_err(Bank::new(0, 1, 4), ErrorKind::InvalidArg, &["protood_bank_create"]);
    assert_err(Bank::new(2, 1, 0), ErrorKind::InvalidArg, &["protood_bank_create", "dim"]);
    let mut bank = Bank::new(3, 2, 4).unwrap();
    let before = snapshot(&bank);
    let e = assert_err(bank.set_param(BankParam::Momentum, 1.0), ErrorKind::InvalidArg,
                       &["protood_bank_set_param"]);
    assert!(e.to_string().contains("invalid argument"), "{}", e);
    assert_err(bank.set_param(BankParam::SinkhornIters, 2.5), ErrorKind::InvalidArg, &["protood_bank_set_param"]);
    assert_err(bank.set_param(BankParam::Temperature, f64::NAN), ErrorKind::InvalidArg, &["protood_bank_set_param"]);
    assert_eq!(snapshot(&bank), before);
    // Defaults of SPEC.md, read back through every key.
    let defaults = [0.999, 0.1, 0.05, 3.0, 5.0, 1.0, 0.5, 1.0, 0.1, 0.07];
    for (k, want) in BankParam::ALL.iter().zip(defaults) {
        assert_eq!(bank.param(*k).unwrap(), want, "{:?}", k);
    }
}

#[test]
fn palm_step_errors_leave_the_bank_unchanged() {
    let mut bank = Bank::new(3, 2, 4).unwrap();
    let (h, labels) = small_batch();
    let before = snapshot(&bank);

    assert_err(bank.palm_step(&h[..7], Some(&labels)), ErrorKind::Shape, &["protood::Bank::palm_step", "h.len() = 7"]);
    assert_err(bank.palm_step(&h, Some(&labels[..4])), ErrorKind::Shape, &["palm_step", "labels.len() = 4"]);
    assert_err(bank.palm_step(&[], Some(&[])), ErrorKind::InvalidArg, &["protood_palm_step"]);
    let mut nan = h.clone();
    nan[9] = f32::NAN;
    assert_err(bank.palm_step(&nan, Some(&labels)), ErrorKind::NonFinite, &["protood_palm_step"]);
    let mut zero_row = h.clone();
    zero_row[4..8].copy_from_slice(&[0.0; 4]);
    assert_err(bank.palm_step(&zero_row, Some(&labels)), ErrorKind::NonFinite, &["protood_palm_step"]);
    let bad = [0, 0, 1, 3, 2];
    assert_err(bank.palm_step(&h, Some(&bad)), ErrorKind::Label, &["protood_palm_step", "labels[3]"]);
    assert_err(bank.palm_update(&h, Some(&[0, 0, 1, -1, 2])), ErrorKind::Label, &["protood_palm_step"]);
    assert_err(bank.palm_assign(&h, Some(&bad)), ErrorKind::Label, &["protood_palm_assign"]);
    assert_err(bank.palm_assign(&h[..5], None), ErrorKind::Shape, &["palm_assign", "h.len() = 5"]);
    assert_eq!(snapshot(&bank), before);

    // And the bank still works afterwards.
    bank.palm_step(&h, Some(&labels)).unwrap();
    assert_ne!(snapshot(&bank).0, before.0);
}

#[test]
fn cider_step_errors_leave_the_bank_unchanged() {
    let (h, labels) = small_batch();
    let mut palm_bank = Bank::new(3, 2, 4).unwrap();
    let before = snapshot(&palm_bank);
    assert_err(palm_bank.cider_step(&h, &labels), ErrorKind::State, &["protood_cider_step"]);
    assert_eq!(snapshot(&palm_bank), before);

    let mut bank = Bank::new(3, 1, 4).unwrap();
    let before = snapshot(&bank);
    assert_err(bank.cider_step(&h, &labels[..2]), ErrorKind::Shape, &["protood::Bank::cider_step", "labels"]);
    assert_err(bank.cider_step(&h, &[0, 0, 1, 1, 7]), ErrorKind::Label, &["protood_cider_step", "labels[4]"]);
    let mut inf = h.clone();
    inf[0] = f32::INFINITY;
    assert_err(bank.cider_update(&inf, &labels), ErrorKind::NonFinite, &["protood_cider_step"]);
    assert_eq!(snapshot(&bank), before);
}

#[test]
fn bank_prototypes_and_persistence_errors() {
    let mut bank = Bank::new(2, 2, 3).unwrap();
    let before = snapshot(&bank);
    assert_err(bank.set_prototypes(&[1.0; 11]), ErrorKind::Shape, &["protood::Bank::set_prototypes", "p.len() = 11"]);
    let mut p = vec![1.0f32; 12];
    p[3..6].copy_from_slice(&[0.0; 3]);
    assert_err(bank.set_prototypes(&p), ErrorKind::NonFinite, &["protood_bank_set_prototypes"]);
    assert_err(bank.init_from_features(&[1.0, 0.0, 0.0], &[0, 1], 1), ErrorKind::Shape, &["init_from_features", "labels"]);
    assert_err(bank.init_from_features(&[1.0, 0.0, 0.0], &[5], 1), ErrorKind::Label, &["protood_bank_init_from_features"]);
    assert_eq!(snapshot(&bank), before);

    let missing = temp_path("missing.bank");
    assert_err(Bank::load(&missing), ErrorKind::Io, &["protood_bank_load", "missing.bank"]);
    assert_err(Bank::load("bad\0path"), ErrorKind::InvalidArg, &["protood::Bank::load", "NUL"]);
    let bytes = bank.to_bytes().unwrap();
    assert_err(Bank::from_bytes(&bytes[..bytes.len() - 1]), ErrorKind::Format, &["protood_bank_from_buffer"]);
    assert_err(Bank::from_bytes(&[]), ErrorKind::Format, &["protood_bank_from_buffer"]);
    let mut corrupt = bytes.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x40;
    assert_err(Bank::from_bytes(&corrupt), ErrorKind::Format, &["protood_bank_from_buffer"]);
    let garbage = temp_path("garbage.bank");
    std::fs::write(&garbage, b"not a bank at all, really not").unwrap();
    assert_err(Bank::load(&garbage), ErrorKind::Format, &["protood_bank_load"]);
    std::fs::remove_file(&garbage).unwrap();
}

#[test]
fn bank_round_trips_and_clones_independently() {
    let mut bank = Bank::new(3, 2, 5).unwrap();
    bank.init_random(protood::InitScheme::Sphere, 7).unwrap();
    bank.set_param(BankParam::TopK, 2.0).unwrap();
    let bytes = bank.to_bytes().unwrap();
    let back = Bank::from_bytes(&bytes).unwrap();
    assert_eq!(snapshot(&back), snapshot(&bank));
    assert_eq!((back.n_classes(), back.protos_per_class(), back.dim()), (3, 2, 5));

    let path = temp_path("round.bank");
    bank.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "a file and a buffer hold the same bytes");
    assert_eq!(snapshot(&Bank::load(&path).unwrap()), snapshot(&bank));
    std::fs::remove_file(&path).unwrap();

    let mut copy = bank.clone();
    copy.init_random(protood::InitScheme::Positive, 99).unwrap();
    copy.set_param(BankParam::TopK, 1.0).unwrap();
    assert_eq!(snapshot(&bank), snapshot(&back), "the original is untouched by its clone");
    assert_ne!(snapshot(&copy), snapshot(&bank));

    // Seeded draws are reproducible.
    let mut again = Bank::new(3, 2, 5).unwrap();
    again.init_random(protood::InitScheme::Sphere, 7).unwrap();
    assert_eq!(again.prototypes(), bank.prototypes());
}

/// K = 1: class means of the normalised rows, normalised, computed independently here.
#[test]
fn init_from_features_gives_class_means() {
    let x = [3.0f32, 0.0, 4.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 1.0, 1.0, 0.0];
    let labels = [0, 1, 0, 1];
    let mut bank = Bank::new(2, 1, 3).unwrap();
    bank.init_from_features(&x, &labels, 0).unwrap();
    let mut want = vec![0.0f64; 6];
    for (r, l) in x.chunks(3).zip(labels) {
        let n = r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        for j in 0..3 {
            want[l as usize * 3 + j] += r[j] as f64 / n;
        }
    }
    for c in want.chunks_mut(3) {
        let n = c.iter().map(|v| v * v).sum::<f64>().sqrt();
        c.iter_mut().for_each(|v| *v /= n);
    }
    assert_close_scaled("class means", &bank.prototypes(), &want, 1e-6);
}

fn fitted_knn() -> (Scorer, Vec<f32>) {
    let train: Vec<f32> = (0..60).map(|i| ((i * 37 % 17) as f32) - 8.0 + 0.5).collect(); // 15 x 4
    let mut s = Scorer::new(ScorerKind::Knn, 4).unwrap();
    s.set_k(3).unwrap();
    s.fit(&train, None, 0).unwrap();
    (s, train)
}

#[test]
fn scorer_errors_leave_the_scorer_unchanged() {
    assert_err(Scorer::new(ScorerKind::Knn, 0), ErrorKind::InvalidArg, &["protood_scorer_create"]);
    let unfitted = Scorer::new(ScorerKind::Ssd, 4).unwrap();
    assert_err(unfitted.score(&[1.0, 0.0, 0.0, 0.0]), ErrorKind::State, &["protood_scorer_score"]);

    let (mut knn, train) = fitted_knn();
    let q: Vec<f32> = train.iter().rev().cloned().collect();
    let before = knn.score(&q).unwrap();
    assert_err(knn.score(&q[..6]), ErrorKind::Shape, &["protood::Scorer::score", "q.len() = 6"]);
    let mut out = vec![0.0f32; 3];
    assert_err(knn.score_into(&q, &mut out), ErrorKind::Shape, &["score_into", "scores.len() = 3"]);
    assert_eq!(out, vec![0.0; 3], "output untouched");
    assert_err(knn.score(&[]), ErrorKind::InvalidArg, &["protood_scorer_score"]);
    let mut nan_q = q.clone();
    nan_q[2] = f32::NAN;
    assert_err(knn.score(&nan_q), ErrorKind::NonFinite, &["protood_scorer_score"]);
    // A failed refit (k > n) keeps the old fit; so does one with a NaN.
    assert_err(knn.fit(&train[..8], None, 0), ErrorKind::InvalidArg, &["protood_scorer_fit"]);
    let mut nan_train = train.clone();
    nan_train[13] = f32::NAN;
    assert_err(knn.fit(&nan_train, None, 0), ErrorKind::NonFinite, &["protood_scorer_fit"]);
    assert_err(knn.set_k(16), ErrorKind::InvalidArg, &["protood_scorer_set_param"]);
    assert_err(knn.set_normalize(false), ErrorKind::State, &["protood_scorer_set_param"]);
    assert_err(knn.set_param(ScorerParam::K, 2.5), ErrorKind::InvalidArg, &["protood_scorer_set_param"]);
    assert_eq!(knn.k().unwrap(), 3);
    assert!(knn.normalize().unwrap());
    assert_eq!(knn.score(&q).unwrap(), before);

    let bank = Bank::new(2, 2, 4).unwrap();
    assert_err(knn.fit_bank(&bank), ErrorKind::State, &["protood_scorer_fit_bank"]);
    let mut proto = Scorer::new(ScorerKind::Prototype, 5).unwrap();
    assert_err(proto.fit_bank(&bank), ErrorKind::Shape, &["protood_scorer_fit_bank"]);

    let mut maha = Scorer::new(ScorerKind::Mahalanobis, 4).unwrap();
    assert_err(maha.fit(&train, None, 2), ErrorKind::InvalidArg, &["protood_scorer_fit"]);
    let labels: Vec<i32> = (0..15).map(|i| i % 3).collect();
    assert_err(maha.fit(&train, Some(&labels[..14]), 3), ErrorKind::Shape, &["protood::Scorer::fit", "labels"]);
    assert_err(maha.fit(&train, Some(&labels), 2), ErrorKind::Label, &["protood_scorer_fit"]);
    maha.fit(&train, Some(&labels), 3).unwrap();
}

#[test]
fn scorer_persistence_and_errors() {
    let (knn, train) = fitted_knn();
    let q = &train[8..40];
    let mut kinds = vec![knn];
    for kind in [ScorerKind::Mahalanobis, ScorerKind::Ssd, ScorerKind::Prototype] {
        let mut s = Scorer::new(kind, 4).unwrap();
        let labels: Vec<i32> = (0..15).map(|i| i % 3).collect();
        s.fit(&train, if kind == ScorerKind::Mahalanobis { Some(&labels) } else { None }, 3).unwrap();
        kinds.push(s);
    }
    for s in &kinds {
        let back = Scorer::from_bytes(&s.to_bytes().unwrap()).unwrap();
        assert_eq!((back.kind(), back.dim()), (s.kind(), s.dim()));
        assert_eq!(back.score(q).unwrap(), s.score(q).unwrap(), "{:?}", s.kind());
        let path = temp_path("scorer.bin");
        s.save(&path).unwrap();
        let loaded = Scorer::load(&path).unwrap();
        assert_eq!((loaded.kind(), loaded.dim()), (s.kind(), s.dim()));
        assert_eq!(loaded.score(q).unwrap(), s.score(q).unwrap());
        std::fs::remove_file(&path).unwrap();
    }
    // An unfitted scorer of another dimension round-trips too.
    let wide = Scorer::new(ScorerKind::Knn, 77).unwrap();
    let back = Scorer::from_bytes(&wide.to_bytes().unwrap()).unwrap();
    assert_eq!((back.kind(), back.dim()), (ScorerKind::Knn, 77));

    assert_err(Scorer::load(temp_path("nope.scorer")), ErrorKind::Io, &["protood_scorer_load", "nope.scorer"]);
    let bytes = kinds[0].to_bytes().unwrap();
    assert_err(Scorer::from_bytes(&bytes[..bytes.len() - 3]), ErrorKind::Format, &["protood_scorer_from_buffer"]);
    let dir = std::env::temp_dir();
    assert_err(kinds[0].save(dir.join("no-such-dir-protood").join("x.bin")), ErrorKind::Io, &["protood_scorer_save"]);
}

#[test]
fn metric_errors() {
    let s_in = [0.9f32, 0.8, 0.7];
    let s_out = [0.5f32, 0.1];
    assert_err(metrics::auroc(&[], &s_out), ErrorKind::InvalidArg, &["protood_auroc", "n_in"]);
    let mut nan = s_in;
    nan[2] = f32::NAN;
    assert_err(metrics::auroc(&nan, &s_out), ErrorKind::NonFinite, &["protood_auroc", "s_in[2]"]);
    assert_err(metrics::aupr(&s_in, &[f32::NAN], Positive::Out), ErrorKind::NonFinite, &["protood_aupr", "s_out[0]"]);
    assert_err(metrics::fpr_at_tpr(&s_in, &s_out, 1.5, FprConvention::Roc), ErrorKind::InvalidArg,
               &["protood_fpr_at_tpr", "tpr"]);
    assert_err(metrics::fpr_at_tpr(&s_in, &s_out, 0.0, FprConvention::Knn), ErrorKind::InvalidArg, &["tpr"]);
    // Perfect separation, computed by hand.
    assert_eq!(metrics::auroc(&s_in, &s_out).unwrap(), 1.0);
    assert_eq!(metrics::aupr(&s_in, &s_out, Positive::In).unwrap(), 1.0);
    assert_eq!(metrics::fpr_at_tpr(&s_in, &s_out, 0.95, FprConvention::OodPositive).unwrap(), 0.0);
    // All tied: AUROC 1/2, AUPR = share of positives.
    assert_eq!(metrics::auroc(&[1.0; 3], &[1.0; 2]).unwrap(), 0.5);
    assert!((metrics::aupr(&[1.0; 3], &[1.0; 2], Positive::Out).unwrap() - 0.4).abs() < 1e-15);
}

#[test]
fn sinkhorn_errors() {
    let s = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
    assert_err(protood::sinkhorn(&s, 4, 0.05, 3), ErrorKind::Shape, &["protood::sinkhorn", "scores.len() = 6"]);
    assert_err(protood::sinkhorn(&s, 0, 0.05, 3), ErrorKind::InvalidArg, &["protood_sinkhorn"]);
    assert_err(protood::sinkhorn(&s, 3, 0.0, 3), ErrorKind::InvalidArg, &["protood_sinkhorn", "epsilon"]);
    assert_err(protood::sinkhorn(&s, 3, 0.05, 0), ErrorKind::InvalidArg, &["protood_sinkhorn", "iters"]);
    assert_err(protood::sinkhorn(&s, 3, 0.05, u32::MAX), ErrorKind::InvalidArg, &["protood::sinkhorn", "iters"]);
    let mut nan = s;
    nan[4] = f32::NAN;
    assert_err(protood::sinkhorn(&nan, 3, 0.05, 3), ErrorKind::NonFinite, &["protood_sinkhorn"]);
    assert_err(protood::set_threads(0), ErrorKind::InvalidArg, &["protood_set_threads"]);
}

#[test]
fn npy_round_trips_and_errors() {
    let m = temp_path("m.npy");
    let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    npy::write_f32(&m, 4, 3, &data).unwrap();
    let info = npy::info(&m).unwrap();
    assert_eq!((info.dtype, info.rows, info.cols), (npy::Dtype::F32, 4, 3));
    let back = npy::read_f32(&m).unwrap();
    assert_eq!((back.rows, back.cols, back.data.clone()), (4, 3, data.clone()));
    assert_eq!(npy::read_f64(&m).unwrap().data, data.iter().map(|v| *v as f64).collect::<Vec<_>>());
    assert_err(npy::read_i32(&m), ErrorKind::Shape, &["protood_npy_read_i32", "4 x 3"]);
    assert_err(npy::write_f32(&m, 4, 4, &data), ErrorKind::Shape, &["protood::npy::write_f32", "data.len() = 12"]);

    let v = temp_path("v.npy");
    npy::write_f32_vector(&v, &data[..5]).unwrap();
    let i = npy::info(&v).unwrap();
    assert_eq!((i.rows, i.cols), (5, 1));
    // Labels are never guessed from floats.
    assert_err(npy::read_i32(&v), ErrorKind::Format, &["protood_npy_read_i32"]);
    let l = temp_path("l.npy");
    npy::write_i32(&l, &[3, -1, 7]).unwrap();
    assert_eq!(npy::info(&l).unwrap().dtype, npy::Dtype::I32);
    assert_eq!(npy::read_i32(&l).unwrap(), vec![3, -1, 7]);

    // A truncated file is refused, never misread.
    let bytes = std::fs::read(&m).unwrap();
    std::fs::write(&m, &bytes[..bytes.len() - 4]).unwrap();
    assert_err(npy::read_f32(&m), ErrorKind::Format, &["protood_npy_info"]);
    for p in [&m, &v, &l] {
        std::fs::remove_file(p).unwrap();
    }
    assert_err(npy::info(temp_path("absent.npy")), ErrorKind::Io, &["protood_npy_info", "absent.npy"]);
    assert_err(npy::info("a\0b.npy"), ErrorKind::InvalidArg, &["protood::npy::info", "NUL"]);
}

/// protood_last_error is per thread: concurrent failures each see their own message.
#[test]
fn error_messages_are_per_thread() {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for _ in 0..200 {
                    if t % 2 == 0 {
                        assert_err(metrics::auroc(&[f32::NAN], &[1.0]), ErrorKind::NonFinite, &["protood_auroc"]);
                    } else {
                        assert_err(Bank::new(1, 1, 0), ErrorKind::InvalidArg, &["protood_bank_create"]);
                    }
                }
            });
        }
    });
}
