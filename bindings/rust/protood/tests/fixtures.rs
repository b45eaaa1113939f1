//! The reference cases of SPEC.md (../shared/fixtures) through the safe API, within the
//! tolerances of SPEC.md §8.
mod common;
use common::*;
use protood::{metrics, BankParam, FprConvention, Positive, Scorer, ScorerKind};

/// z = n2(h), in float64.
fn normalise_rows(h: &[f32], d: usize) -> Vec<f64> {
    h.chunks(d)
        .flat_map(|r| {
            let norm = r.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt().max(1e-12);
            r.iter().map(move |v| *v as f64 / norm)
        })
        .collect()
}

fn palm_bank(c: &Case) -> protood::Bank {
    let mut bank = protood::Bank::new(c.u("n_classes"), c.u("n_protos"), c.u("dim")).unwrap();
    for (key, name) in [
        (BankParam::Momentum, "momentum"),
        (BankParam::Temperature, "temperature"),
        (BankParam::SinkhornEpsilon, "sinkhorn_epsilon"),
        (BankParam::SinkhornIters, "sinkhorn_iters"),
        (BankParam::TopK, "topk"),
        (BankParam::LambdaPcon, "lambda_pcon"),
        (BankParam::PconTemperature, "pcon_temperature"),
    ] {
        bank.set_param(key, c.f(name)).unwrap();
        assert_eq!(bank.param(key).unwrap(), c.f(name));
    }
    bank.set_prototypes(&c.f32s("prototypes_in.npy").data).unwrap();
    bank
}

fn labels_of(c: &Case) -> Option<Vec<i32>> {
    if c.f("supervised") != 0.0 {
        Some(c.i32s("labels.npy"))
    } else {
        assert!(!c.has("labels.npy"));
        None
    }
}

#[test]
fn palm_steps_match_the_reference() {
    let names = cases("palm_");
    assert!(names.len() >= 9, "expected the PALM cases, found {:?}", names);
    for name in names {
        let c = Case::load(&name);
        let mut bank = palm_bank(&c);
        let h = c.f32s("features.npy");
        assert_eq!((h.rows, h.cols), (c.u("n"), c.u("dim")));
        let labels = labels_of(&c);
        let step = bank.palm_step(&h.data, labels.as_deref()).unwrap();
        assert_loss(&format!("{} loss_total", name), step.losses.total, c.f("loss_total"));
        assert_loss(&format!("{} loss_mle", name), step.losses.mle, c.f("loss_mle"));
        assert_loss(&format!("{} loss_pcon", name), step.losses.pcon, c.f("loss_pcon"));
        assert_close_scaled(&format!("{} grad", name), &step.grad, &c.f64s("grad.npy").data, 1e-4);
        assert_close_scaled(&format!("{} prototypes_out", name), &bank.prototypes(),
                            &c.f64s("prototypes_out.npy").data, 1e-4);
    }
}

#[test]
fn palm_update_moves_the_bank_as_the_full_step() {
    let c = Case::load("palm_small");
    let h = c.f32s("features.npy");
    let labels = c.i32s("labels.npy");
    let mut a = palm_bank(&c);
    let mut b = a.clone();
    a.palm_step(&h.data, Some(&labels)).unwrap();
    b.palm_update(&h.data, Some(&labels)).unwrap();
    assert_close_scaled("palm_update", &b.prototypes(), &c.f64s("prototypes_out.npy").data, 1e-4);
    let (pa, pb) = (a.prototypes(), b.prototypes());
    for (x, y) in pa.iter().zip(&pb) {
        assert!((x - y).abs() <= 1e-6, "update-only vs full step: {} vs {}", x, y);
    }
}

/// Sinkhorn on z·Pᵀ of the bank before the step gives the reference's Q1, and palm_assign gives
/// W = n1_rows(T ⊙ M ⊙ Q1), computed here from that Q1 with the case's mask and top-k.
#[test]
fn sinkhorn_and_palm_assign_match_the_first_pass() {
    for name in cases("palm_") {
        let c = Case::load(&name);
        let bank = palm_bank(&c);
        let (d, k, ncls) = (c.u("dim"), c.u("n_protos"), c.u("n_classes"));
        let p = k * ncls;
        let h = c.f32s("features.npy");
        let n = h.rows;
        let labels = labels_of(&c);
        let z = normalise_rows(&h.data, d);
        let protos = c.f32s("prototypes_in.npy").data;
        let mut s = vec![0.0f32; n * p];
        for i in 0..n {
            for j in 0..p {
                s[i * p + j] = (0..d).map(|t| z[i * d + t] * protos[j * d + t] as f64).sum::<f64>() as f32;
            }
        }
        let q1_want = c.f64s("sinkhorn_first.npy").data;
        let q1 = protood::sinkhorn(&s, p, c.f("sinkhorn_epsilon"), c.u("sinkhorn_iters") as u32).unwrap();
        assert_close_scaled(&format!("{} sinkhorn_first", name), &q1, &q1_want, 1e-4);

        // Expected weights from the reference Q1.
        let topk = match (c.u("topk"), labels.is_some()) {
            (0, true) => k,
            (0, false) => p,
            (t, true) => t.min(k),
            (t, false) => t.min(p),
        };
        let mut w_want = vec![0.0f64; n * p];
        for i in 0..n {
            let cand: Vec<usize> = match &labels {
                Some(l) => (l[i] as usize * k..(l[i] as usize + 1) * k).collect(),
                None => (0..p).collect(),
            };
            let mut order = cand.clone();
            order.sort_by(|a, b| q1_want[i * p + *b].partial_cmp(&q1_want[i * p + *a]).unwrap());
            let support = &order[..topk];
            let mass: f64 = support.iter().map(|j| q1_want[i * p + j]).sum();
            for j in support {
                w_want[i * p + j] = q1_want[i * p + j] / mass.max(1e-12);
            }
        }
        let w = bank.palm_assign(&h.data, labels.as_deref()).unwrap();
        assert_close_scaled(&format!("{} palm_assign", name), &w, &w_want, 1e-4);
    }
}

#[test]
fn sinkhorn_matches_the_reference() {
    let c = Case::load("sinkhorn");
    let scores = c.f32s("scores.npy");
    let p = c.u("n_protos_total");
    assert_eq!((scores.rows, scores.cols), (c.u("n"), p));
    let q = protood::sinkhorn(&scores.data, p, c.f("sinkhorn_epsilon"), c.u("sinkhorn_iters") as u32).unwrap();
    assert_close_scaled("sinkhorn assign", &q, &c.f64s("assign.npy").data, 1e-4);
    for row in q.chunks(p) {
        assert!((row.iter().map(|v| *v as f64).sum::<f64>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn cider_steps_match_the_reference() {
    let names = cases("cider_");
    assert!(names.len() >= 3, "expected the CIDER cases, found {:?}", names);
    for name in names {
        let c = Case::load(&name);
        assert_eq!(c.u("n_protos"), 1);
        let mut bank = protood::Bank::new(c.u("n_classes"), 1, c.u("dim")).unwrap();
        for (key, p) in [
            (BankParam::Momentum, "momentum"),
            (BankParam::Temperature, "temperature"),
            (BankParam::CompWeight, "weight_comp"),
            (BankParam::DisBaseTemperature, "dis_base_temperature"),
            (BankParam::CompBaseTemperature, "comp_base_temperature"),
        ] {
            bank.set_param(key, c.f(p)).unwrap();
        }
        bank.set_prototypes(&c.f32s("prototypes_in.npy").data).unwrap();
        let h = c.f32s("features.npy");
        let labels = c.i32s("labels.npy");
        let step = bank.cider_step(&h.data, &labels).unwrap();
        assert_loss(&format!("{} loss_total", name), step.losses.total, c.f("loss_total"));
        assert_loss(&format!("{} loss_comp", name), step.losses.comp, c.f("loss_comp"));
        assert_loss(&format!("{} loss_dis", name), step.losses.dis, c.f("loss_dis"));
        assert_close_scaled(&format!("{} grad", name), &step.grad, &c.f64s("grad.npy").data, 1e-4);
        assert_close_scaled(&format!("{} prototypes_out", name), &bank.prototypes(),
                            &c.f64s("prototypes_out.npy").data, 1e-4);
    }
}

struct ScorerCase {
    c: Case,
    train: Vec<f32>,
    labels: Vec<i32>,
    test: Vec<f32>,
    dim: usize,
}

fn scorer_case() -> ScorerCase {
    let c = Case::load("scorers");
    let train = c.f32s("train.npy");
    let test = c.f32s("test.npy");
    let dim = c.u("dim");
    assert_eq!((train.cols, test.cols), (dim, dim));
    let labels = c.i32s("train_labels.npy");
    assert_eq!(labels.len(), train.rows);
    ScorerCase { train: train.data, labels, test: test.data, dim, c }
}

#[test]
fn knn_scores_match_the_reference() {
    let s = scorer_case();
    for (k, file) in [(1, "knn_k1.npy"), (5, "knn_k5.npy"), (50, "knn_k50.npy")] {
        let mut knn = Scorer::new(ScorerKind::Knn, s.dim).unwrap();
        knn.set_k(k).unwrap();
        assert_eq!(knn.k().unwrap(), k);
        knn.fit(&s.train, None, 0).unwrap();
        assert_close_relative(file, &knn.score(&s.test).unwrap(), &s.c.f64s(file).data, 1e-4);
    }
}

#[test]
fn mahalanobis_and_ssd_scores_match_the_reference() {
    let s = scorer_case();
    let mut maha = Scorer::new(ScorerKind::Mahalanobis, s.dim).unwrap();
    maha.fit(&s.train, Some(&s.labels), s.c.u("n_classes")).unwrap();
    assert_close_relative("maha_tied", &maha.score(&s.test).unwrap(), &s.c.f64s("maha_tied.npy").data, 1e-4);

    let mut ssd = Scorer::new(ScorerKind::Ssd, s.dim).unwrap();
    ssd.fit(&s.train, None, 0).unwrap();
    assert_close_relative("ssd", &ssd.score(&s.test).unwrap(), &s.c.f64s("ssd.npy").data, 1e-4);
}

#[test]
fn prototype_scores_match_the_reference_from_rows_and_from_a_bank() {
    let s = scorer_case();
    let protos = s.c.f32s("prototypes.npy");
    let want = s.c.f64s("proto_max_cosine.npy").data;

    let mut from_rows = Scorer::new(ScorerKind::Prototype, s.dim).unwrap();
    from_rows.fit(&protos.data, None, 0).unwrap();
    assert_close_relative("proto (rows)", &from_rows.score(&s.test).unwrap(), &want, 1e-4);

    // The same prototypes in a bank (any C x K with C K = P rows).
    let mut bank = protood::Bank::new(protos.rows, 1, s.dim).unwrap();
    bank.set_prototypes(&protos.data).unwrap();
    let mut from_bank = Scorer::new(ScorerKind::Prototype, s.dim).unwrap();
    from_bank.fit_bank(&bank).unwrap();
    drop(bank); // the scorer holds a copy
    assert_close_relative("proto (bank)", &from_bank.score(&s.test).unwrap(), &want, 1e-4);
}

#[test]
fn metrics_match_the_reference() {
    let c = Case::load("metrics");
    let s_in = c.f32s("scores_in.npy").data;
    let s_out = c.f32s("scores_out.npy").data;
    let close = |what: &str, got: f64, want: f64| {
        assert!((got - want).abs() <= 1e-9, "{}: {} vs expected {}", what, got, want);
    };
    close("auroc", metrics::auroc(&s_in, &s_out).unwrap(), c.f("auroc"));
    close("aupr_in", metrics::aupr(&s_in, &s_out, Positive::In).unwrap(), c.f("aupr_in"));
    close("aupr_out", metrics::aupr(&s_in, &s_out, Positive::Out).unwrap(), c.f("aupr_out"));
    close("fpr95", metrics::fpr_at_tpr(&s_in, &s_out, 0.95, FprConvention::default()).unwrap(), c.f("fpr95"));
    close("fpr95_knn", metrics::fpr_at_tpr(&s_in, &s_out, 0.95, FprConvention::Knn).unwrap(), c.f("fpr95_knn"));
    close("fpr95_palm", metrics::fpr_at_tpr(&s_in, &s_out, 0.95, FprConvention::Percentile).unwrap(),
          c.f("fpr95_palm"));
    close("fpr95_openood", metrics::fpr_at_tpr(&s_in, &s_out, 0.95, FprConvention::OodPositive).unwrap(),
          c.f("fpr95_openood"));
}

/// AUROC against an independent O(n m) pair count on the reference scores.
#[test]
fn auroc_equals_the_pair_count() {
    let c = Case::load("metrics");
    let s_in = c.f32s("scores_in.npy").data;
    let s_out = c.f32s("scores_out.npy").data;
    let mut twice = 0u64;
    for a in &s_in {
        for b in &s_out {
            twice += if a > b { 2 } else if a == b { 1 } else { 0 };
        }
    }
    let want = twice as f64 / 2.0 / (s_in.len() as f64 * s_out.len() as f64);
    assert!((metrics::auroc(&s_in, &s_out).unwrap() - want).abs() <= 1e-12);
}
