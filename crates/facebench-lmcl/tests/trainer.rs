//! Head training on a small separable synthetic problem: it learns, it is bit-reproducible,
//! checkpoints round-trip, and bad input is reported.

use facebench_lmcl::{
    train_head, train_head_with, ArcFallback, HeadInit, LrSchedule, MarginLoss, SgdParams, SphereAnneal, StepRecord,
    TrainConfig, TrainedHead,
};

const CLASSES: usize = 8;
const PER_CLASS: usize = 40;
const DIM: usize = 16;

/// Gaussian-ish clusters (sum of uniforms) around random centres of norm 1.5, noise 0.35 per
/// coordinate: separable, but not at initialisation.
fn synthetic(seed: u64) -> (Vec<f32>, Vec<usize>) {
    sample(seed, seed)
}

/// Cluster centres from `centre_seed`, noise from `noise_seed` (fresh samples of the same classes).
fn sample(centre_seed: u64, noise_seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut s = centre_seed;
    let mut uni = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let centres: Vec<Vec<f64>> = (0..CLASSES)
        .map(|_| {
            let c: Vec<f64> = (0..DIM).map(|_| uni()).collect();
            let n = c.iter().map(|v| v * v).sum::<f64>().sqrt();
            c.into_iter().map(|v| 1.5 * v / n).collect()
        })
        .collect();
    let mut s = noise_seed ^ 0x5DEE_CE66_D1CE_5EED;
    let mut uni = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..CLASSES * PER_CLASS {
        let c = i % CLASSES;
        for v in &centres[c] {
            let noise = (uni() + uni() + uni()) * 0.35;
            x.push((v + noise) as f32);
        }
        y.push(c);
    }
    (x, y)
}

fn config(loss: MarginLoss) -> TrainConfig {
    TrainConfig {
        epochs: 12,
        batch_size: 32,
        sgd: SgdParams { lr: 0.05, momentum: 0.9, weight_decay: 5e-4, nesterov: false },
        ..TrainConfig::new(loss, 8)
    }
}

fn epoch_means(records: &[StepRecord], epoch: usize) -> (f64, f64) {
    let r: Vec<_> = records.iter().filter(|r| r.epoch == epoch).collect();
    let n = r.len() as f64;
    (r.iter().map(|r| r.loss).sum::<f64>() / n, r.iter().map(|r| r.accuracy).sum::<f64>() / n)
}

#[test]
fn loss_falls_and_accuracy_rises_for_every_loss() {
    let (x, y) = synthetic(1);
    let losses = [
        MarginLoss::Softmax,
        MarginLoss::NormFace { s: 16.0 },
        MarginLoss::CosFace { s: 16.0, m: 0.2 },
        MarginLoss::SphereFace { m: 4, lambda: 0.0 },
        MarginLoss::ArcFace { s: 16.0, m: 0.3, fallback: ArcFallback::InsightFace },
        MarginLoss::Combined { s: 16.0, m1: 1.0, m2: 0.2, m3: 0.1 },
    ];
    for loss in losses {
        let mut cfg = config(loss);
        if let MarginLoss::SphereFace { .. } = loss {
            cfg.anneal = Some(SphereAnneal { base: 100.0, gamma: 0.1, power: 1.0, lambda_min: 5.0 });
        }
        let head = train_head(&x, DIM, &y, &cfg).unwrap();
        let rec = head.records();
        assert_eq!(rec.len(), cfg.epochs * (x.len() / DIM).div_ceil(cfg.batch_size));
        let (l0, a0) = epoch_means(rec, 0);
        let (l1, a1) = epoch_means(rec, cfg.epochs - 1);
        assert!(l1 < 0.5 * l0, "{loss}: loss {l0} -> {l1}");
        assert!(a1 > a0 && a1 >= 0.95, "{loss}: accuracy {a0} -> {a1}");
        // The learned map generalises to fresh samples of the same clusters.
        let (xt, yt) = sample(1, 99);
        let f = head.apply(&xt).unwrap();
        let w = head.class_weights().unwrap();
        let out = head.out_dim();
        let correct = (0..yt.len())
            .filter(|&i| {
                let fi = &f[i * out..(i + 1) * out];
                let score = |c: usize| -> f32 {
                    let wc = &w[c * out..(c + 1) * out];
                    let d: f32 = fi.iter().zip(wc).map(|(a, b)| a * b).sum();
                    let n: f32 = wc.iter().map(|v| v * v).sum::<f32>().sqrt();
                    if loss == MarginLoss::Softmax {
                        d
                    } else {
                        d / n
                    }
                };
                (0..CLASSES).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap() == yt[i]
            })
            .count();
        let acc = correct as f64 / yt.len() as f64;
        eprintln!("{loss}: epoch 0 loss {l0:.3} acc {a0:.3}; last loss {l1:.3} acc {a1:.3}; held-out {acc:.3}");
        // (Normalising a feature scales all its class scores alike, so Softmax's argmax holds.)
        assert!(acc >= 0.9, "{loss}: held-out accuracy {acc}");
    }
}

#[test]
fn same_seed_is_bit_identical_and_other_seeds_differ() {
    let (x, y) = synthetic(2);
    let cfg = TrainConfig { epochs: 3, ..config(MarginLoss::CosFace { s: 16.0, m: 0.35 }) };
    let a = train_head(&x, DIM, &y, &cfg).unwrap();
    let b = train_head(&x, DIM, &y, &cfg).unwrap();
    let bits = |h: &TrainedHead| -> Vec<u64> { h.records().iter().map(|r| r.loss.to_bits()).collect() };
    assert_eq!(bits(&a), bits(&b));
    let fa: Vec<u32> = a.apply(&x).unwrap().iter().map(|v| v.to_bits()).collect();
    let fb: Vec<u32> = b.apply(&x).unwrap().iter().map(|v| v.to_bits()).collect();
    assert_eq!(fa, fb);
    let wa: Vec<u32> = a.class_weights().unwrap().iter().map(|v| v.to_bits()).collect();
    let wb: Vec<u32> = b.class_weights().unwrap().iter().map(|v| v.to_bits()).collect();
    assert_eq!(wa, wb);
    let c = train_head(&x, DIM, &y, &TrainConfig { seed: 1, ..cfg.clone() }).unwrap();
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn progress_callback_sees_every_step_in_order() {
    let (x, y) = synthetic(3);
    let cfg = TrainConfig {
        epochs: 4,
        batch_size: 100, // 320 rows: 3 full batches and one of 20
        schedule: LrSchedule::Step { milestones: vec![2], gamma: 0.1 },
        ..config(MarginLoss::NormFace { s: 10.0 })
    };
    let mut seen = Vec::new();
    let head = train_head_with(&x, DIM, &y, &cfg, &mut |r| seen.push(*r)).unwrap();
    assert_eq!(seen.len(), 16);
    assert_eq!(seen, head.records());
    for (i, r) in seen.iter().enumerate() {
        assert_eq!((r.step, r.epoch), (i, i / 4));
        let want = if r.epoch < 2 { 0.05 } else { 0.005 };
        assert!((r.lr - want).abs() < 1e-12, "{r:?}");
        assert!((0.0..=1.0).contains(&r.accuracy));
    }
    assert_eq!(StepRecord::CSV_HEADER.split(',').count(), seen[0].csv_row().split(',').count());
    assert!(seen[5].csv_row().starts_with("1,5,"));
}

#[test]
fn checkpoints_round_trip() {
    let (x, y) = synthetic(4);
    let dir = std::env::temp_dir().join(format!("facebench-lmcl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (bias, normalize) in [(true, false), (false, true)] {
        let cfg = TrainConfig {
            epochs: 2,
            bias,
            normalize_output: normalize,
            ..config(MarginLoss::ArcFace { s: 16.0, m: 0.3, fallback: ArcFallback::Easy })
        };
        let head = train_head(&x, DIM, &y, &cfg).unwrap();
        let path = dir.join(format!("head-{bias}.safetensors"));
        head.save(&path).unwrap();
        let back = TrainedHead::load(&path).unwrap();
        assert_eq!(back.loss(), head.loss());
        assert_eq!(back.normalizes_output(), normalize);
        assert_eq!((back.in_dim(), back.out_dim(), back.num_classes()), (DIM, 8, CLASSES));
        assert_eq!(back.apply(&x).unwrap(), head.apply(&x).unwrap());
        assert_eq!(back.class_weights().unwrap(), head.class_weights().unwrap());
        let f = head.apply(&x[..DIM * 3]).unwrap();
        for row in f.chunks(8) {
            let n: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert_eq!((n - 1.0).abs() < 1e-5, normalize, "norm {n}");
        }
    }
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = TrainedHead::load(&junk).unwrap_err().to_string();
    assert!(e.contains("junk.safetensors"), "{e}");
    let e = TrainedHead::load(&dir.join("missing.safetensors")).unwrap_err().to_string();
    assert!(e.contains("missing.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn identity_init_starts_from_the_raw_embeddings() {
    let (x, y) = synthetic(5);
    let cfg = TrainConfig {
        init: HeadInit::Identity,
        epochs: 1,
        sgd: SgdParams { lr: 0.0, momentum: 0.0, weight_decay: 0.0, nesterov: false },
        normalize_output: false,
        ..TrainConfig::new(MarginLoss::CosFace { s: 16.0, m: 0.2 }, DIM)
    };
    let head = train_head(&x, DIM, &y, &cfg).unwrap();
    assert_eq!(head.apply(&x).unwrap(), x, "lr 0 leaves the identity map unchanged");
}

#[test]
fn bad_training_input_is_reported() {
    let (x, y) = synthetic(6);
    let cfg = config(MarginLoss::CosFace { s: 16.0, m: 0.2 });
    let msg = |r: facebench_lmcl::Result<TrainedHead>| r.unwrap_err().to_string();
    assert!(msg(train_head(&x[..x.len() - 1], DIM, &y, &cfg)).contains("whole number of rows"));
    assert!(msg(train_head(&x, DIM, &y[1..], &cfg)).contains("labels"));
    let mut nan = x.clone();
    nan[5 * DIM + 2] = f32::NAN;
    let e = msg(train_head(&nan, DIM, &y, &cfg));
    assert!(e.contains("row 5") && e.contains("column 2"), "{e}");
    let e = msg(train_head(&x, DIM, &y, &TrainConfig { init: HeadInit::Identity, ..cfg.clone() }));
    assert!(e.contains("identity"), "{e}");
    assert!(train_head(&x, DIM, &y, &TrainConfig { epochs: 0, ..cfg.clone() }).is_err());
    assert!(train_head(&[], DIM, &[], &cfg).is_err());
    let e = msg(train_head(&x, DIM, &y, &TrainConfig { loss: MarginLoss::NormFace { s: 0.0 }, ..cfg.clone() }));
    assert!(e.contains("s = 0"), "{e}");
    let head = train_head(&x, DIM, &y, &TrainConfig { epochs: 1, ..cfg.clone() }).unwrap();
    assert!(head.apply(&x[..DIM + 1]).is_err());
    let diverge = TrainConfig {
        sgd: SgdParams { lr: 1e30, momentum: 0.0, weight_decay: 0.0, nesterov: false },
        schedule: LrSchedule::Constant,
        ..config(MarginLoss::Softmax)
    };
    let e = msg(train_head(&x, DIM, &y, &diverge));
    assert!(e.contains("diverged"), "{e}");
}
