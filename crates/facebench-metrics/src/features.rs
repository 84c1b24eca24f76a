//! Feature-level scores for the rules that score or transform features themselves.
//!
//! All arithmetic is in f64 on f32 inputs, sums taken in index order. SphereFace's Matlab
//! code works in double too, so it is reproduced to rounding; facenet on float32 embeddings
//! computes in float32 and can differ from these f64 scores in the 7th digit.

use crate::verify::fold_members;
use crate::MetricsError;

/// Distance used by facenet's `distance(embeddings1, embeddings2, distance_metric)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FacenetMetric {
    /// `distance_metric=0`: `sum((a - b)^2)`.
    SquaredL2,
    /// `distance_metric=1`: `arccos(a.b / (|a| |b|)) / pi`; the cosine is clamped to [-1, 1]
    /// so rounding cannot produce NaN (NumPy would).
    Angular,
}

/// Number of rows after checking both slices are whole rows of the same count.
fn rows(left: &[f32], right: &[f32], dim: usize) -> Result<usize, MetricsError> {
    if dim == 0 {
        return Err(MetricsError::ZeroDim);
    }
    if !left.len().is_multiple_of(dim) {
        return Err(MetricsError::RaggedFeatures { what: "left", len: left.len(), dim });
    }
    if !right.len().is_multiple_of(dim) {
        return Err(MetricsError::RaggedFeatures { what: "right", len: right.len(), dim });
    }
    if left.len() != right.len() {
        return Err(MetricsError::LengthMismatch { what: "right features", got: right.len(), expected: left.len() });
    }
    if left.is_empty() {
        return Err(MetricsError::Empty);
    }
    Ok(left.len() / dim)
}

/// Squared L2 distance per pair (InsightFace's `np.sum(np.square(e1 - e2), 1)`; on unit
/// vectors it equals `2 - 2 cos`). `left`/`right` are row-major `n x dim`.
pub fn squared_l2(left: &[f32], right: &[f32], dim: usize) -> Result<Vec<f64>, MetricsError> {
    rows(left, right, dim)?;
    Ok(left
        .chunks_exact(dim)
        .zip(right.chunks_exact(dim))
        .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum())
        .collect())
}

/// Mean of the left and right feature rows of the pairs not in `test_fold`, left rows first
/// (both Matlab `mean([L(:,val), R(:,val)], 2)` and NumPy `np.mean(concatenate, axis=0)`).
fn training_mean(left: &[f32], right: &[f32], dim: usize, folds: &[usize], test_fold: usize) -> Vec<f64> {
    let mut sum = vec![0.0f64; dim];
    let mut count = 0usize;
    for side in [left, right] {
        for (row, &f) in side.chunks_exact(dim).zip(folds) {
            if f != test_fold {
                for (s, &x) in sum.iter_mut().zip(row) {
                    *s += f64::from(x);
                }
                count += 1;
            }
        }
    }
    sum.iter().map(|s| s / count as f64).collect()
}

/// SphereFace/CosFace `evaluation.m` scores: for each test fold `k`, `mu` = mean of the
/// training folds' left and right features together; subtract `mu` from every feature,
/// L2-normalise, cosine. Returns `out[k][pair]`, ready for [`crate::FoldScores::PerTestFold`].
///
/// The Matlab loop re-reads `featureLs`/`featureRs` from `pairs` at the top of every fold
/// iteration, so the subtraction does NOT accumulate across folds: each fold starts from the
/// raw features, and so does this function.
pub fn mean_subtracted_cosines(
    left: &[f32],
    right: &[f32],
    dim: usize,
    folds: &[usize],
) -> Result<Vec<Vec<f64>>, MetricsError> {
    let n = rows(left, right, dim)?;
    let members = fold_members(folds, n)?;
    if members.len() < 2 {
        return Err(MetricsError::TooFewFolds(members.len()));
    }
    let mut out = Vec::with_capacity(members.len());
    let mut a = vec![0.0f64; dim];
    let mut b = vec![0.0f64; dim];
    for k in 0..members.len() {
        let mu = training_mean(left, right, dim, folds, k);
        let mut scores = Vec::with_capacity(n);
        for (i, (l, r)) in left.chunks_exact(dim).zip(right.chunks_exact(dim)).enumerate() {
            for j in 0..dim {
                a[j] = f64::from(l[j]) - mu[j];
                b[j] = f64::from(r[j]) - mu[j];
            }
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            let ctx = || format!(" after subtracting the mean of the folds other than {k}");
            if na == 0.0 {
                return Err(MetricsError::ZeroNorm { index: i, side: "left", context: ctx() });
            }
            if nb == 0.0 {
                return Err(MetricsError::ZeroNorm { index: i, side: "right", context: ctx() });
            }
            // Normalise each vector, then sum the elementwise products, as the Matlab does.
            scores.push(a.iter().zip(&b).map(|(x, y)| (x / na) * (y / nb)).sum());
        }
        out.push(scores);
    }
    Ok(out)
}

fn facenet_pair(a: &[f64], b: &[f64], metric: FacenetMetric, index: usize) -> Result<f64, MetricsError> {
    match metric {
        FacenetMetric::SquaredL2 => Ok(a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()),
        FacenetMetric::Angular => {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            if na == 0.0 || nb == 0.0 {
                let side = if na == 0.0 { "left" } else { "right" };
                return Err(MetricsError::ZeroNorm { index, side, context: String::new() });
            }
            let cos = (dot / (na * nb)).clamp(-1.0, 1.0);
            Ok(cos.acos() / std::f64::consts::PI)
        }
    }
}

/// facenet `distance(e1, e2, metric)` without mean subtraction.
pub fn facenet_distances(
    left: &[f32],
    right: &[f32],
    dim: usize,
    metric: FacenetMetric,
) -> Result<Vec<f64>, MetricsError> {
    rows(left, right, dim)?;
    left.chunks_exact(dim)
        .zip(right.chunks_exact(dim))
        .enumerate()
        .map(|(i, (l, r))| {
            let a: Vec<f64> = l.iter().map(|&x| f64::from(x)).collect();
            let b: Vec<f64> = r.iter().map(|&x| f64::from(x)).collect();
            facenet_pair(&a, &b, metric, i)
        })
        .collect()
}

/// facenet `calculate_roc(..., subtract_mean=True)`: for each test fold `k`, subtract the
/// mean of the training pairs' embeddings (`np.concatenate([e1[train], e2[train]])`) from
/// both sides, then `distance`. Returns `out[k][pair]` for [`crate::FoldScores::PerTestFold`].
pub fn facenet_mean_subtracted_distances(
    left: &[f32],
    right: &[f32],
    dim: usize,
    metric: FacenetMetric,
    folds: &[usize],
) -> Result<Vec<Vec<f64>>, MetricsError> {
    let n = rows(left, right, dim)?;
    let members = fold_members(folds, n)?;
    if members.len() < 2 {
        return Err(MetricsError::TooFewFolds(members.len()));
    }
    let mut out = Vec::with_capacity(members.len());
    for k in 0..members.len() {
        let mu = training_mean(left, right, dim, folds, k);
        let scores = left
            .chunks_exact(dim)
            .zip(right.chunks_exact(dim))
            .enumerate()
            .map(|(i, (l, r))| {
                let a: Vec<f64> = l.iter().zip(&mu).map(|(&x, m)| f64::from(x) - m).collect();
                let b: Vec<f64> = r.iter().zip(&mu).map(|(&x, m)| f64::from(x) - m).collect();
                facenet_pair(&a, &b, metric, i)
            })
            .collect::<Result<Vec<f64>, _>>()?;
        out.push(scores);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squared_l2_by_hand() {
        let d = squared_l2(&[1.0, 0.0, 0.0, 1.0], &[0.0, 1.0, 0.0, 1.0], 2).unwrap();
        assert_eq!(d, vec![2.0, 0.0]);
        assert!(matches!(squared_l2(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 2), Err(MetricsError::RaggedFeatures { .. })));
        assert!(matches!(squared_l2(&[1.0, 2.0], &[1.0, 2.0, 3.0, 4.0], 2), Err(MetricsError::LengthMismatch { .. })));
        assert!(matches!(squared_l2(&[], &[], 0), Err(MetricsError::ZeroDim)));
    }

    #[test]
    fn mean_subtraction_uses_only_training_folds_and_does_not_accumulate() {
        // 2 folds, 1 pair each, dim 2. Fold 0 test: mu = mean of pair 1's features.
        let left = [1.0f32, 0.0, 3.0, 1.0];
        let right = [0.0f32, 1.0, 3.0, 3.0];
        let s = mean_subtracted_cosines(&left, &right, 2, &[0, 1]).unwrap();
        // k=0: mu = (3, 2); pair0: (-2,-2) vs (-3,-1) -> cos = 8 / (sqrt8 sqrt10)
        let want0 = 8.0 / (8f64.sqrt() * 10f64.sqrt());
        assert!((s[0][0] - want0).abs() < 1e-15);
        // k=1: mu = (0.5, 0.5) from the RAW pair 0 (no accumulation); pair1: (2.5,0.5) vs (2.5,2.5)
        let want1 = (2.5 * 2.5 + 0.5 * 2.5) / ((2.5f64 * 2.5 + 0.25).sqrt() * (12.5f64).sqrt());
        assert!((s[1][1] - want1).abs() < 1e-15);
        // pair 1 in fold 0's scores: mu = (3,2): (0,-1) vs (0,1) -> -1
        assert!((s[0][1] + 1.0).abs() < 1e-15);
    }

    #[test]
    fn zero_norm_after_subtraction_is_an_error() {
        let left = [1.0f32, 1.0, 1.0, 1.0];
        let right = [2.0f32, 2.0, 1.0, 1.0];
        // fold 0 test: mu = mean(pair1) = (1,1): left0 - mu = 0.
        let e = mean_subtracted_cosines(&left, &right, 2, &[0, 1]).unwrap_err();
        assert!(matches!(e, MetricsError::ZeroNorm { index: 0, side: "left", .. }), "{e}");
    }

    #[test]
    fn facenet_angular_by_hand() {
        let d = facenet_distances(&[1.0, 0.0, 1.0, 0.0], &[0.0, 2.0, -3.0, 0.0], 2, FacenetMetric::Angular).unwrap();
        assert!((d[0] - 0.5).abs() < 1e-15 && (d[1] - 1.0).abs() < 1e-15);
    }
}
