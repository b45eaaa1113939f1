//! Sharing handles across threads as the C threading contract allows: `&Scorer` and `&Bank`
//! from several threads at once (const calls), handles moved between threads.
mod common;
use common::*;
use protood::{Bank, Scorer, ScorerKind};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Scorer>();
    assert_send_sync::<Bank>();
    assert_send_sync::<protood::Error>();
}

fn scorer_data() -> (Vec<f32>, Vec<i32>, Vec<f32>, usize) {
    let c = Case::load("scorers");
    let train = c.f32s("train.npy");
    let test = c.f32s("test.npy");
    (train.data, c.i32s("train_labels.npy"), test.data, train.cols)
}

/// Every kind scored from 4 threads at once, many times, equals the single-threaded bits.
#[test]
fn concurrent_scoring_of_one_scorer_gives_the_sequential_bits() {
    let (train, labels, test, dim) = scorer_data();
    let mut scorers = Vec::new();
    for kind in [ScorerKind::Knn, ScorerKind::Mahalanobis, ScorerKind::Ssd, ScorerKind::Prototype] {
        let mut s = Scorer::new(kind, dim).unwrap();
        if kind == ScorerKind::Knn {
            s.set_k(5).unwrap();
        }
        s.fit(&train, if kind == ScorerKind::Mahalanobis { Some(&labels) } else { None }, 5).unwrap();
        scorers.push(s);
    }
    let expected: Vec<Vec<f32>> = scorers.iter().map(|s| s.score(&test).unwrap()).collect();
    let scorers = &scorers;
    let expected = &expected;
    let test = &test;
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                for round in 0..25 {
                    for (s, want) in scorers.iter().zip(expected) {
                        let got = s.score(test).unwrap();
                        assert_eq!(&got, want, "{:?} thread {} round {}", s.kind(), t, round);
                        // Streamed in batches that vary per thread and round: the same bits.
                        let batch = 1 + (t * 7 + round * 3) % 20;
                        let streamed = s
                            .score_stream(want.len(), batch, |first, count, out, _| -> Result<(), ()> {
                                out.copy_from_slice(&test[first * dim..(first + count) * dim]);
                                Ok(())
                            })
                            .unwrap();
                        assert_eq!(&streamed, want, "{:?} batch {}", s.kind(), batch);
                    }
                }
            });
        }
    });
}

#[test]
fn concurrent_palm_assign_on_one_bank() {
    let c = Case::load("palm_cifar_shape");
    let mut bank = Bank::new(c.u("n_classes"), c.u("n_protos"), c.u("dim")).unwrap();
    bank.set_prototypes(&c.f32s("prototypes_in.npy").data).unwrap();
    let h = c.f32s("features.npy").data;
    let labels = c.i32s("labels.npy");
    let want = bank.palm_assign(&h, Some(&labels)).unwrap();
    let (bank, h, labels, want) = (&bank, &h, &labels, &want);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(move || {
                for _ in 0..20 {
                    assert_eq!(&bank.palm_assign(h, Some(labels)).unwrap(), want);
                    assert_eq!(bank.prototypes().len(), bank.n_prototypes() * bank.dim());
                }
            });
        }
    });
}

/// A handle moved to another thread, trained there and moved back.
#[test]
fn handles_move_between_threads() {
    let c = Case::load("cider_small");
    let mut bank = Bank::new(c.u("n_classes"), 1, c.u("dim")).unwrap();
    bank.set_param(protood::BankParam::Momentum, c.f("momentum")).unwrap();
    bank.set_prototypes(&c.f32s("prototypes_in.npy").data).unwrap();
    let h = c.f32s("features.npy").data;
    let labels = c.i32s("labels.npy");
    let (bank, loss) = std::thread::spawn(move || {
        let loss = bank.cider_step(&h, &labels).unwrap().losses.total;
        (bank, loss)
    })
    .join()
    .unwrap();
    assert_loss("cider_small total (other thread)", loss, c.f("loss_total"));
    assert_close_scaled("prototypes_out (moved back)", &bank.prototypes(), &c.f64s("prototypes_out.npy").data, 1e-4);

    let mut scorer = Scorer::new(ScorerKind::Prototype, c.u("dim")).unwrap();
    scorer.fit_bank(&bank).unwrap();
    let q = bank.prototypes();
    let scores = std::thread::spawn(move || scorer.score(&q).unwrap()).join().unwrap();
    for s in scores {
        assert!((s - 1.0).abs() < 1e-6, "a prototype's cosine to itself: {}", s);
    }
}
