//! The CosFace paper's two experiments at head scale, on frozen face embeddings:
//!
//! * [`toy`] (Fig. 3): a learned linear map to 2-D features, trained with each loss on a few
//!   identities; the result holds the 2-D features, the class weights and the measured
//!   angular spread and gap per loss.
//! * [`ablation`] (Fig. 5): for each test fold of LFW View 2, a head trained on the
//!   identity-disjoint people of the other folds; fold accuracy per loss/margin and seed.
//!
//! Both only train and measure; reading stores and drawing figures belong to the callers.

use std::time::Instant;

use facebench_metrics::{ten_fold, FoldScores, Rule};
use rayon::prelude::*;

use crate::error::input;
use crate::{
    angular_stats, train_head, AngularStats, HeadInit, LmclError, MarginLoss, Result, SgdParams, SphereAnneal,
    TrainConfig,
};

/// Training settings shared by every panel of the toy experiment.
#[derive(Clone, Debug)]
pub struct ToyConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig { epochs: 40, batch_size: 64, lr: 0.1, seed: 0 }
    }
}

/// One loss's outcome in the toy experiment.
#[derive(Clone, Debug)]
pub struct ToyPanel {
    pub loss: MarginLoss,
    /// `n x 2` learned features (unnormalised; Softmax's are not on the circle).
    pub features: Vec<f32>,
    /// `classes x 2` class weights.
    pub weights: Vec<f32>,
    /// Angles of the L2-normalised 2-D features.
    pub stats: AngularStats,
    /// Mean batch loss and accuracy over the last epoch.
    pub final_loss: f64,
    pub final_accuracy: f64,
    pub seconds: f64,
}

/// Trains one 2-D head per loss on `x` (`n x dim`, one row per image) with `labels`.
///
/// The rows are L2-normalised and mean-centred first: face embeddings share a large common
/// component, and a linear map to 2-D would otherwise spend itself on it (SphereFace's
/// evaluation subtracts the mean for the same reason).
pub fn toy(x: &[f32], dim: usize, labels: &[usize], losses: &[MarginLoss], cfg: &ToyConfig) -> Result<Vec<ToyPanel>> {
    let centred = centre(x, dim, labels.len())?;
    losses
        .iter()
        .map(|&loss| {
            let tc = TrainConfig {
                epochs: cfg.epochs,
                batch_size: cfg.batch_size,
                seed: cfg.seed,
                sgd: SgdParams { lr: cfg.lr, momentum: 0.9, weight_decay: 5e-4, nesterov: false },
                normalize_output: loss != MarginLoss::Softmax,
                ..TrainConfig::new(loss, 2)
            };
            let t = Instant::now();
            let head = train_head(&centred, dim, labels, &tc)?;
            let seconds = t.elapsed().as_secs_f64();
            let features = head.apply(&centred)?;
            let stats = angular_stats(&features, 2, labels)?;
            let steps_per_epoch = labels.len().div_ceil(cfg.batch_size);
            let last: Vec<_> = head.records().iter().rev().take(steps_per_epoch).collect();
            let k = last.len().max(1) as f64;
            Ok(ToyPanel {
                loss,
                weights: head.class_weights()?,
                features,
                stats,
                final_loss: last.iter().map(|r| r.loss).sum::<f64>() / k,
                final_accuracy: last.iter().map(|r| r.accuracy).sum::<f64>() / k,
                seconds,
            })
        })
        .collect()
}

/// Rows L2-normalised, then the mean row subtracted.
fn centre(x: &[f32], dim: usize, n: usize) -> Result<Vec<f32>> {
    if dim == 0 || x.len() != n * dim || n == 0 {
        return input(format!("{} values are not {n} rows of {dim}", x.len()));
    }
    let mut rows: Vec<f32> = x.to_vec();
    for (i, r) in rows.chunks_mut(dim).enumerate() {
        let norm = r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return input(format!("row {i} has norm {norm}"));
        }
        r.iter_mut().for_each(|v| *v = (f64::from(*v) / norm) as f32);
    }
    let mut mean = vec![0f64; dim];
    for r in rows.chunks(dim) {
        mean.iter_mut().zip(r).for_each(|(m, &v)| *m += f64::from(v));
    }
    for r in rows.chunks_mut(dim) {
        r.iter_mut().zip(&mean).for_each(|(v, m)| *v -= (m / n as f64) as f32);
    }
    Ok(rows)
}

/// What the ablation compares: the backbone's own features, or a trained head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Setting {
    Raw,
    Head(MarginLoss),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Raw => f.write_str("raw backbone features"),
            Setting::Head(l) => write!(f, "{l}"),
        }
    }
}

impl Setting {
    /// The paper's sweep: raw features, Softmax, A-Softmax (m = 4, annealed), ArcFace
    /// (m = 0.5) and LMCL with m = 0, 0.05, ..., 0.45, all at scale `s`.
    pub fn paper_sweep(s: f64) -> Vec<Setting> {
        let mut v = vec![
            Setting::Raw,
            Setting::Head(MarginLoss::Softmax),
            Setting::Head(MarginLoss::SphereFace { m: 4, lambda: 0.0 }),
            Setting::Head(MarginLoss::ArcFace { s, m: 0.5, fallback: crate::ArcFallback::InsightFace }),
        ];
        // i*5/100 rather than i*0.05: 0.15, not 0.15000000000000002, in tables.
        v.extend((0..10).map(|i| Setting::Head(MarginLoss::CosFace { s, m: f64::from(i * 5) / 100.0 })));
        v
    }

    /// LMCL's margin, if this is an LMCL head.
    pub fn cosface_margin(&self) -> Option<f64> {
        match self {
            Setting::Head(MarginLoss::CosFace { m, .. }) => Some(*m),
            _ => None,
        }
    }
}

/// The training data of one test fold: people outside it.
#[derive(Clone, Debug)]
pub struct TrainSet {
    /// `rows x dim` embeddings.
    pub x: Vec<f32>,
    /// Class of each row, `0..classes`.
    pub y: Vec<usize>,
    pub classes: usize,
}

/// Everything the ablation needs, already laid out by the caller.
#[derive(Clone, Debug)]
pub struct AblationData {
    pub dim: usize,
    /// `images x dim` embeddings of the images the pairs use.
    pub pair_images: Vec<f32>,
    /// Per pair: rows of its two images in `pair_images`.
    pub pairs: Vec<(usize, usize)>,
    pub is_same: Vec<bool>,
    /// 0-based fold of each pair.
    pub folds: Vec<usize>,
    /// `train[k]`: training set when fold `k` is tested (identity-disjoint from its pairs).
    pub train: Vec<TrainSet>,
}

/// Head training settings of the ablation.
#[derive(Clone, Debug)]
pub struct AblationConfig {
    pub settings: Vec<Setting>,
    pub seeds: u64,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// `Identity` starts every head at the raw features (a fine-tuned linear layer).
    pub init: HeadInit,
}

/// Fold accuracies of one setting and seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AblationRow {
    pub setting: String,
    /// LMCL's m for LMCL rows.
    pub margin: Option<f64>,
    pub seed: u64,
    /// Accuracy of each test fold, threshold from the other folds (exact rule).
    pub fold_accuracy: Vec<f64>,
    pub mean: f64,
    /// Population std over folds.
    pub std: f64,
    /// Wall time of the setting's folds, and one head's training time per epoch (heads
    /// train one per thread, so this is close to CPU time on an idle machine).
    pub seconds: f64,
    pub seconds_per_epoch: f64,
}

/// Trains one head per (setting, seed, fold) and scores every fold's pairs with its head.
///
/// Folds of one setting train in parallel (each head is small, so one head per thread beats
/// threading inside its matmuls); results are identical for any thread count.
/// `progress` is told each finished (setting, seed).
pub fn ablation(
    data: &AblationData,
    cfg: &AblationConfig,
    progress: &(dyn Fn(&AblationRow) + Sync),
) -> Result<Vec<AblationRow>> {
    let d = data.dim;
    let n_folds = data.train.len();
    if d == 0 || !data.pair_images.len().is_multiple_of(d) {
        return input(format!("pair embeddings: {} values are not rows of {d}", data.pair_images.len()));
    }
    let rows = data.pair_images.len() / d;
    if let Some((i, _)) = data.pairs.iter().enumerate().find(|(_, &(a, b))| a >= rows || b >= rows) {
        return input(format!("pair {i} names an image row >= {rows}"));
    }
    if data.is_same.len() != data.pairs.len() || data.folds.len() != data.pairs.len() {
        return input("pairs, labels and folds differ in length");
    }
    if let Some(&f) = data.folds.iter().find(|&&f| f >= n_folds) {
        return input(format!("fold {f} has no training set ({n_folds} given)"));
    }
    let mut out = Vec::new();
    for setting in &cfg.settings {
        let seeds = if *setting == Setting::Raw { 1 } else { cfg.seeds.max(1) };
        for seed in 0..seeds {
            let t = Instant::now();
            let per_fold: Vec<(Vec<f64>, f64)> = (0..n_folds)
                .into_par_iter()
                .map(|k| -> Result<(Vec<f64>, f64)> {
                    let t_head = Instant::now();
                    let feats = match setting {
                        Setting::Raw => data.pair_images.clone(),
                        Setting::Head(loss) => {
                            let ts = &data.train[k];
                            let mut tc = TrainConfig {
                                epochs: cfg.epochs,
                                batch_size: cfg.batch_size,
                                seed,
                                init: cfg.init,
                                sgd: SgdParams { lr: cfg.lr, ..SgdParams::default() },
                                ..TrainConfig::new(*loss, d)
                            };
                            if let MarginLoss::SphereFace { .. } = loss {
                                tc.anneal = Some(SphereAnneal::default());
                            }
                            // One thread for the head's own matmuls: candle's gemm would
                            // otherwise split each small product over every core.
                            let single = rayon::ThreadPoolBuilder::new()
                                .num_threads(1)
                                .build()
                                .map_err(|e| LmclError::Input(format!("thread pool: {e}")))?;
                            single.install(|| train_head(&ts.x, d, &ts.y, &tc)?.apply(&data.pair_images))?
                        }
                    };
                    let head_s = t_head.elapsed().as_secs_f64();
                    let od = feats.len() / rows;
                    let scores = data
                        .pairs
                        .iter()
                        .map(|&(a, b)| cosine(&feats[a * od..(a + 1) * od], &feats[b * od..(b + 1) * od]))
                        .collect();
                    Ok((scores, head_s))
                })
                .collect::<Result<_>>()?;
            let head_seconds: f64 = per_fold.iter().map(|(_, t)| t).sum();
            let per_fold: Vec<Vec<f64>> = per_fold.into_iter().map(|(s, _)| s).collect();
            let report = ten_fold(Rule::Exact, FoldScores::PerTestFold(&per_fold), &data.is_same, &data.folds)
                .map_err(|e| LmclError::Input(format!("fold accuracy: {e}")))?;
            let fold_accuracy: Vec<f64> = report.folds.iter().map(|f| f.test_accuracy).collect();
            let (mean, std) = mean_std(&fold_accuracy);
            let seconds = t.elapsed().as_secs_f64();
            let heads_epochs = if *setting == Setting::Raw { 0 } else { n_folds * cfg.epochs.max(1) };
            let row = AblationRow {
                setting: setting.to_string(),
                margin: setting.cosface_margin(),
                seed,
                fold_accuracy,
                mean,
                std,
                seconds,
                // Each head's own training time (heads run one per thread) per epoch.
                seconds_per_epoch: if heads_epochs == 0 { 0.0 } else { head_seconds / heads_epochs as f64 },
            };
            progress(&row);
            out.push(row);
        }
    }
    Ok(out)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&p, &q) in a.iter().zip(b) {
        d += f64::from(p) * f64::from(q);
        na += f64::from(p) * f64::from(p);
        nb += f64::from(q) * f64::from(q);
    }
    d / (na.sqrt() * nb.sqrt()).max(1e-30)
}

/// Mean and population standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (m, (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use facebench_core::rng::SplitMix64;

    /// Box-Muller standard normal.
    fn normal(r: &mut SplitMix64) -> f64 {
        let u = r.unit().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * r.unit()).cos()
    }

    /// Two well-separated Gaussian identities per fold in 8-D.
    fn clusters(classes: usize, per: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut r = SplitMix64::new(seed);
        let centres: Vec<f32> = (0..classes * dim).map(|_| normal(&mut r) as f32).collect();
        let mut x = Vec::new();
        let mut y = Vec::new();
        for c in 0..classes {
            for _ in 0..per {
                x.extend((0..dim).map(|j| centres[c * dim + j] + 0.2 * normal(&mut r) as f32));
                y.push(c);
            }
        }
        (x, y)
    }

    #[test]
    fn toy_panels_separate_clusters_and_report_their_angles() {
        let (x, y) = clusters(4, 30, 8, 1);
        let cfg = ToyConfig { epochs: 30, batch_size: 32, lr: 0.1, seed: 0 };
        let panels =
            toy(&x, 8, &y, &[MarginLoss::NormFace { s: 10.0 }, MarginLoss::CosFace { s: 10.0, m: 0.2 }], &cfg).unwrap();
        assert_eq!(panels.len(), 2);
        for p in &panels {
            assert_eq!((p.features.len(), p.weights.len()), (240, 8));
            // Chance is 0.25.
            assert!(p.final_accuracy > 0.6, "{:?} acc {}", p.loss, p.final_accuracy);
            // The reported statistics are those of the returned features.
            let again = angular_stats(&p.features, 2, &y).unwrap();
            assert_eq!(again.mean_spread_deg, p.stats.mean_spread_deg);
            assert!(p.stats.mean_gap_deg > p.stats.mean_spread_deg);
        }
        assert!(toy(&x, 8, &y[..10], &[MarginLoss::Softmax], &cfg).is_err());
    }

    #[test]
    fn ablation_raw_rows_equal_a_direct_fold_computation() {
        // Pairs over 2 folds of well-separated identities; raw features need no training.
        let (x, ids) = clusters(6, 4, 8, 2);
        let mut pairs = Vec::new();
        let mut is_same = Vec::new();
        let mut folds = Vec::new();
        for i in 0..x.len() / 8 {
            for j in i + 1..x.len() / 8 {
                if (i + j) % 3 == 0 {
                    pairs.push((i, j));
                    is_same.push(ids[i] == ids[j]);
                    folds.push(pairs.len() % 2);
                }
            }
        }
        let data = AblationData {
            dim: 8,
            pair_images: x.clone(),
            pairs: pairs.clone(),
            is_same: is_same.clone(),
            folds: folds.clone(),
            train: vec![TrainSet { x: x.clone(), y: ids.clone(), classes: 6 }; 2],
        };
        let cfg = AblationConfig {
            settings: vec![Setting::Raw],
            seeds: 3,
            epochs: 1,
            batch_size: 8,
            lr: 0.1,
            init: HeadInit::Identity,
        };
        let rows = ablation(&data, &cfg, &|_| {}).unwrap();
        assert_eq!(rows.len(), 1, "raw features have no seeds");
        // Direct: each fold's threshold maximises the other fold's accuracy (midpoints).
        let scores: Vec<f64> = pairs.iter().map(|&(a, b)| cosine(&x[a * 8..a * 8 + 8], &x[b * 8..b * 8 + 8])).collect();
        for k in 0..2 {
            let train: Vec<usize> = (0..pairs.len()).filter(|&i| folds[i] != k).collect();
            let acc_at = |idx: &[usize], t: f64| idx.iter().filter(|&&i| (scores[i] > t) == is_same[i]).count();
            let mut cands: Vec<f64> = train.iter().map(|&i| scores[i]).collect();
            cands.sort_by(f64::total_cmp);
            let mut thr: Vec<f64> = vec![cands[0] - 1.0];
            thr.extend(cands.windows(2).filter(|w| w[0] != w[1]).map(|w| 0.5 * (w[0] + w[1])));
            thr.push(cands[cands.len() - 1] + 1.0);
            let best = thr.iter().copied().fold((0, f64::NAN), |b, t| {
                if acc_at(&train, t) > b.0 {
                    (acc_at(&train, t), t)
                } else {
                    b
                }
            });
            let test: Vec<usize> = (0..pairs.len()).filter(|&i| folds[i] == k).collect();
            let expect = acc_at(&test, best.1) as f64 / test.len() as f64;
            assert!(
                (rows[0].fold_accuracy[k] - expect).abs() < 1e-12,
                "fold {k}: {} vs {expect}",
                rows[0].fold_accuracy[k]
            );
        }
    }

    #[test]
    fn ablation_heads_are_seeded_and_reproducible() {
        let (x, ids) = clusters(6, 6, 8, 3);
        let n = ids.len();
        let pairs: Vec<(usize, usize)> =
            (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).filter(|(i, j)| (i + j) % 5 == 0).collect();
        let is_same: Vec<bool> = pairs.iter().map(|&(a, b)| ids[a] == ids[b]).collect();
        let folds: Vec<usize> = (0..pairs.len()).map(|i| i % 2).collect();
        let data = AblationData {
            dim: 8,
            pair_images: x.clone(),
            pairs,
            is_same,
            folds,
            train: vec![TrainSet { x: x.clone(), y: ids.clone(), classes: 6 }; 2],
        };
        let cfg = AblationConfig {
            settings: vec![Setting::Head(MarginLoss::CosFace { s: 10.0, m: 0.2 })],
            seeds: 2,
            epochs: 3,
            batch_size: 8,
            lr: 0.05,
            init: HeadInit::Random,
        };
        let a = ablation(&data, &cfg, &|_| {}).unwrap();
        let b = ablation(&data, &cfg, &|_| {}).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].margin, Some(0.2));
        for (p, q) in a.iter().zip(&b) {
            assert_eq!(p.fold_accuracy, q.fold_accuracy);
        }
        let bad = AblationData { folds: vec![5; data.pairs.len()], ..data };
        assert!(ablation(&bad, &cfg, &|_| {}).unwrap_err().to_string().contains("fold 5"));
    }
}
