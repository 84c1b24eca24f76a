//! Times each metric on an LFW-sized synthetic problem (6000 pairs, 10 folds, 512-D).
//!
//!     cargo run --release -p facebench-metrics --example metrics_speed

use facebench_metrics::*;
use std::time::Instant;

/// SplitMix64 -> uniform [0, 1) and a rough normal (sum of 4 uniforms).
struct Rng(u64);
impl Rng {
    fn u(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.u()).sum::<f64>() - 2.0
    }
}

fn time<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    println!("{what:<44} {:>9.2} ms", t.elapsed().as_secs_f64() * 1e3);
    out
}

fn main() -> Result<(), MetricsError> {
    let (n, dim) = (6000usize, 512usize);
    let mut rng = Rng(7);
    let is_same: Vec<bool> = (0..n).map(|i| (i % 600) < 300).collect();
    let folds: Vec<usize> = (0..n).map(|i| i / 600).collect();
    let mut left = Vec::with_capacity(n * dim);
    let mut right = Vec::with_capacity(n * dim);
    // Unit rows; a same pair shares a direction under heavy noise (cosine ~0.16 vs ~0 +- 0.044),
    // which lands accuracy in the high 90s like a decent model on LFW.
    let unit = |v: Vec<f64>| {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(move |x| (x / norm) as f32)
    };
    for &same in &is_same {
        let a: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
        let b: Vec<f64> = a.iter().map(|&x| if same { x + 6.0 * rng.normal() } else { rng.normal() }).collect();
        left.extend(unit(a));
        right.extend(unit(b));
    }
    let sphere = time("mean_subtracted_cosines (10 folds)", || mean_subtracted_cosines(&left, &right, dim, &folds))?;
    let dist = time("squared_l2", || squared_l2(&left, &right, dim))?;
    // Unit rows: cosine = 1 - d/2.
    let cos: Vec<f64> = dist.iter().map(|d| 1.0 - d / 2.0).collect();
    for rule in Rule::ALL {
        let rep = time(&format!("ten_fold {rule}"), || {
            if rule == Rule::SphereFace {
                ten_fold(rule, FoldScores::PerTestFold(&sphere), &is_same, &folds)
            } else if rule.lower_is_same() {
                ten_fold(rule, FoldScores::Shared(&dist), &is_same, &folds)
            } else {
                ten_fold(rule, FoldScores::Shared(&cos), &is_same, &folds)
            }
        })?;
        println!("    mean accuracy {:.4}", rep.mean);
    }
    time("tar_at_far_insightface (FAR 1e-3)", || tar_at_far_insightface(&dist, &is_same, &folds, 1e-3))?;
    let r = time("roc", || roc(&cos, &is_same))?;
    time("auc", || auc(&r));
    time("eer", || eer(&cos, &is_same))?;
    time("tar_at_far_exact (FAR 1e-3)", || tar_at_far_exact(&cos, &is_same, 1e-3))?;
    time("roc_fold_averaged (100-point grid)", || {
        let grid: Vec<f64> = (0..100).map(|i| i as f64 / 99.0).collect();
        roc_fold_averaged(&cos, &is_same, &folds, &grid)
    })?;
    let counts: Vec<u64> = (0..10_000_000).map(|_| (rng.u() * 50.0) as u64).collect();
    time("cmc_from_counts (10M queries, rank 1000)", || cmc_from_counts(&counts, 1000))?;
    Ok(())
}
