//! Ten-fold verification accuracy under each reference tool's threshold rule.

use crate::{check_finite, check_parallel, MetricsError, Rule};

/// Pair scores in the rule's convention (see [`Rule`]).
#[derive(Clone, Copy, Debug)]
pub enum FoldScores<'a> {
    /// One score per pair, used for every fold.
    Shared(&'a [f64]),
    /// `PerTestFold[k]` = scores of ALL pairs as computed when fold `k` is the test fold
    /// (rules that transform features with training-fold statistics, e.g. SphereFace's mean
    /// subtraction; see [`crate::mean_subtracted_cosines`]).
    PerTestFold(&'a [Vec<f64>]),
}

/// Ten-fold accuracy with its per-fold detail.
///
/// `sem` = `std_sample / sqrt(k)`, which is exactly the "±" FaceX-Zoo prints
/// (`np.std(acc, ddof=1) / np.sqrt(10)`); InsightFace and facenet print `std_population`
/// (`np.std`, ddof 0); SphereFace prints the mean only.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoldReport {
    pub rule: Rule,
    pub folds: Vec<FoldResult>,
    pub mean: f64,
    pub std_population: f64,
    pub std_sample: f64,
    pub sem: f64,
}

impl FoldReport {
    /// The "±" the rule's own tool prints beside the mean: population std for InsightFace
    /// and facenet, SEM for FaceX-Zoo, none for SphereFace (mean only); the exact rule has
    /// no tool, and reports the SEM.
    pub fn tool_plus_minus(&self) -> Option<f64> {
        match self.rule {
            Rule::InsightFace | Rule::FaceNet => Some(self.std_population),
            Rule::FaceXZoo | Rule::Exact => Some(self.sem),
            Rule::SphereFace => None,
        }
    }
}

/// One test fold: the threshold chosen on the other folds and the accuracies it gives.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoldResult {
    pub fold: usize,
    pub threshold: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub n_test: usize,
}

/// Fold ids of `sklearn.model_selection.KFold(n_splits=k, shuffle=False)` over `n` items:
/// contiguous blocks, the first `n % k` blocks one longer. This is how InsightFace `.bin`
/// packs and facenet split pairs.
pub fn kfold_ids(n: usize, k: usize) -> Result<Vec<usize>, MetricsError> {
    if k < 2 {
        return Err(MetricsError::TooFewFolds(k));
    }
    if n < k {
        return Err(MetricsError::Invalid(format!("cannot split {n} pairs into {k} folds")));
    }
    let mut ids = Vec::with_capacity(n);
    for f in 0..k {
        let size = n / k + usize::from(f < n % k);
        ids.extend(std::iter::repeat_n(f, size));
    }
    Ok(ids)
}

/// Indices of the pairs in each fold; fold ids must be `0..k` with every id used.
pub(crate) fn fold_members(folds: &[usize], n: usize) -> Result<Vec<Vec<usize>>, MetricsError> {
    if folds.len() != n {
        return Err(MetricsError::LengthMismatch { what: "folds", got: folds.len(), expected: n });
    }
    // A fold id >= n would leave some fold empty (and could overflow `max + 1`).
    if let Some(index) = folds.iter().position(|&f| f >= n) {
        return Err(MetricsError::FoldOutOfRange { index, fold: folds[index], n_folds: n });
    }
    let n_folds = folds.iter().copied().max().map_or(0, |m| m + 1);
    let mut members = vec![Vec::new(); n_folds];
    for (i, &f) in folds.iter().enumerate() {
        members[f].push(i);
    }
    if let Some(fold) = members.iter().position(Vec::is_empty) {
        return Err(MetricsError::EmptyFold { fold, n_folds });
    }
    Ok(members)
}

/// Ten-fold (k-fold) accuracy: for each fold, pick the threshold on the other folds under
/// `rule`, then measure accuracy on the fold.
pub fn ten_fold(rule: Rule, scores: FoldScores, is_same: &[bool], folds: &[usize]) -> Result<FoldReport, MetricsError> {
    let n = is_same.len();
    if n == 0 {
        return Err(MetricsError::Empty);
    }
    let members = fold_members(folds, n)?;
    let k = members.len();
    if k < 2 {
        return Err(MetricsError::TooFewFolds(k));
    }
    match scores {
        FoldScores::Shared(s) => {
            check_parallel(s.len(), n)?;
            check_finite(s, "")?;
        }
        FoldScores::PerTestFold(v) => {
            if v.len() != k {
                return Err(MetricsError::LengthMismatch {
                    what: "PerTestFold score vectors",
                    got: v.len(),
                    expected: k,
                });
            }
            for (f, s) in v.iter().enumerate() {
                if s.len() != n {
                    return Err(MetricsError::LengthMismatch {
                        what: "PerTestFold scores of one fold",
                        got: s.len(),
                        expected: n,
                    });
                }
                check_finite(s, &format!(" in the scores for test fold {f}"))?;
            }
        }
    }
    if !is_same.iter().any(|&b| b) {
        return Err(MetricsError::MissingClass("same"));
    }
    if is_same.iter().all(|&b| b) {
        return Err(MetricsError::MissingClass("different"));
    }

    let mut results = Vec::with_capacity(k);
    for (fold, test_idx) in members.iter().enumerate() {
        let s = match scores {
            FoldScores::Shared(s) => s,
            FoldScores::PerTestFold(v) => &v[fold],
        };
        let train: Vec<(f64, bool)> = (0..n).filter(|&i| folds[i] != fold).map(|i| (s[i], is_same[i])).collect();
        let test: Vec<(f64, bool)> = test_idx.iter().map(|&i| (s[i], is_same[i])).collect();
        if !train.iter().any(|p| p.1) {
            return Err(MetricsError::TrainingSplitLacks { fold, missing: "same" });
        }
        if train.iter().all(|p| p.1) {
            return Err(MetricsError::TrainingSplitLacks { fold, missing: "different" });
        }
        let threshold = select_threshold(rule, &train);
        results.push(FoldResult {
            fold,
            threshold,
            train_accuracy: accuracy(rule, threshold, &train),
            test_accuracy: accuracy(rule, threshold, &test),
            n_test: test.len(),
        });
    }
    let acc: Vec<f64> = results.iter().map(|r| r.test_accuracy).collect();
    let kf = k as f64;
    let mean = acc.iter().sum::<f64>() / kf;
    let ss: f64 = acc.iter().map(|a| (a - mean) * (a - mean)).sum();
    let std_sample = (ss / (kf - 1.0)).sqrt();
    Ok(FoldReport {
        rule,
        folds: results,
        mean,
        std_population: (ss / kf).sqrt(),
        std_sample,
        sem: std_sample / kf.sqrt(),
    })
}

/// Accuracy of `threshold` on `pairs` with the rule's own comparison operators.
fn accuracy(rule: Rule, threshold: f64, pairs: &[(f64, bool)]) -> f64 {
    let correct = pairs.iter().filter(|&&(s, same)| is_correct(rule, threshold, s, same)).count();
    correct as f64 / pairs.len() as f64
}

fn is_correct(rule: Rule, thr: f64, s: f64, same: bool) -> bool {
    match rule {
        // np.less(dist, threshold): predicted same iff d < thr.
        Rule::InsightFace | Rule::FaceNet => (s < thr) == same,
        // getAccuracy: same counted iff s > thr, different iff s < thr.
        Rule::SphereFace => {
            if same {
                s > thr
            } else {
                s < thr
            }
        }
        // FaceX-Zoo keeps scores in a float32 array and compares it with a float64 scalar
        // threshold; under NumPy 1.x value-based casting (the NumPy it was written for) the
        // comparison runs in float32, so the threshold is rounded to f32 first.
        Rule::FaceXZoo => {
            let (s, t) = (s as f32, thr as f32);
            if same {
                s > t
            } else {
                s < t
            }
        }
        Rule::Exact => (s > thr) == same,
    }
}

/// Sorted scores of the same and different pairs.
fn split_sorted(pairs: &[(f64, bool)]) -> (Vec<f64>, Vec<f64>) {
    let mut pos: Vec<f64> = pairs.iter().filter(|p| p.1).map(|p| p.0).collect();
    let mut neg: Vec<f64> = pairs.iter().filter(|p| !p.1).map(|p| p.0).collect();
    pos.sort_by(f64::total_cmp);
    neg.sort_by(f64::total_cmp);
    (pos, neg)
}

fn select_threshold(rule: Rule, train: &[(f64, bool)]) -> f64 {
    match rule {
        Rule::InsightFace | Rule::FaceNet => insightface_threshold(train),
        Rule::SphereFace => sphereface_threshold(train),
        Rule::FaceXZoo => facexzoo_threshold(train),
        Rule::Exact => exact_threshold(train),
    }
}

/// `np.arange(0, 4, 0.01)`: NumPy fills `start + i * step`, so value i is `i * 0.01`.
pub(crate) fn arange_0_4(step: f64, count: usize) -> impl Iterator<Item = f64> {
    (0..count).map(move |i| i as f64 * step)
}

/// `calculate_roc`: thresholds `np.arange(0, 4, 0.01)` (400 values), accuracy with
/// `dist < thr`, `np.argmax` keeps the first (smallest) best threshold.
fn insightface_threshold(train: &[(f64, bool)]) -> f64 {
    let (pos, neg) = split_sorted(train);
    let mut best = (0usize, f64::NAN);
    for thr in arange_0_4(0.01, 400) {
        let tp = pos.partition_point(|&d| d < thr);
        let tn = neg.len() - neg.partition_point(|&d| d < thr);
        if best.1.is_nan() || tp + tn > best.0 {
            best = (tp + tn, thr);
        }
    }
    best.1
}

/// `getThreshold(scores, flags, 10000)`: thresholds `(-10000:10000)/10000`, accuracy counts
/// `s > thr` for same and `s < thr` for different, result = mean of ALL thresholds that reach
/// the maximum (Matlab `mean(thresholds(accuracys == max(accuracys)))`, summed in order).
fn sphereface_threshold(train: &[(f64, bool)]) -> f64 {
    let (pos, neg) = split_sorted(train);
    let mut best = 0usize;
    let mut sum = 0.0;
    let mut count = 0usize;
    for k in -10000i32..=10000 {
        let thr = f64::from(k) / 10000.0;
        let c = (pos.len() - pos.partition_point(|&s| s <= thr)) + neg.partition_point(|&s| s < thr);
        if c > best || count == 0 {
            best = c;
            sum = thr;
            count = 1;
        } else if c == best {
            sum += thr;
            count += 1;
        }
    }
    sum / count as f64
}

/// `LFWEvaluator.getThreshold(..., num_thresholds=1000)`. Scores are float32 (FaceX-Zoo
/// stores them in `np.float32` arrays); `step = (max - min) / 1000` is promoted to float64
/// (NumPy 1.x scalar promotion), thresholds `min + step * [1..=1000]` are float64 and are
/// compared in float32 (see `is_correct`); pick `np.argmax(tpr - fpr)`, the first maximum.
fn facexzoo_threshold(train: &[(f64, bool)]) -> f64 {
    let mut pos: Vec<f32> = train.iter().filter(|p| p.1).map(|p| p.0 as f32).collect();
    let mut neg: Vec<f32> = train.iter().filter(|p| !p.1).map(|p| p.0 as f32).collect();
    pos.sort_by(f32::total_cmp);
    neg.sort_by(f32::total_cmp);
    let all_min = pos[0].min(neg[0]);
    let all_max = pos[pos.len() - 1].max(neg[neg.len() - 1]);
    let span = all_max - all_min; // float32 subtraction, as in NumPy
    let step = f64::from(span) / 1000.0;
    let (np_, nn) = (pos.len() as f64, neg.len() as f64);
    let mut best = (f64::NEG_INFINITY, f64::NAN);
    for i in 1..=1000u32 {
        let thr = f64::from(all_min) + step * f64::from(i);
        let t = thr as f32;
        let tpr = (pos.len() - pos.partition_point(|&s| s <= t)) as f64 / np_;
        let fpr = (neg.len() - neg.partition_point(|&s| s <= t)) as f64 / nn;
        let j = tpr - fpr;
        if j > best.0 {
            best = (j, thr);
        }
    }
    best.1
}

/// Best cut between consecutive distinct sorted training scores, same iff `s > thr`.
/// The threshold is the midpoint of the two scores (the lower score itself when they are
/// adjacent floats); below every score it is `min - 1`, above every score `max + 1`.
/// Ties between cuts go to the smallest threshold.
fn exact_threshold(train: &[(f64, bool)]) -> f64 {
    let mut sorted: Vec<(f64, bool)> = train.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_pos = sorted.iter().filter(|p| p.1).count() as i64;
    // Cut below everything: all predicted same.
    let mut correct = n_pos;
    let mut best = (correct, sorted[0].0 - 1.0);
    let mut i = 0;
    while i < sorted.len() {
        let v = sorted[i].0;
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == v {
            correct += if sorted[j].1 { -1 } else { 1 };
            j += 1;
        }
        if correct > best.0 {
            let thr = if j < sorted.len() { midpoint(v, sorted[j].0) } else { v + 1.0 };
            best = (correct, thr);
        }
        i = j;
    }
    best.1
}

/// A value `m` with `a <= m < b` as close to the middle as floats allow.
fn midpoint(a: f64, b: f64) -> f64 {
    let mut m = a + (b - a) * 0.5;
    if !m.is_finite() {
        m = a * 0.5 + b * 0.5;
    }
    if m >= b || m < a {
        a
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfold_ids_match_sklearn_sizes() {
        let ids = kfold_ids(23, 10).unwrap();
        let sizes: Vec<usize> = (0..10).map(|f| ids.iter().filter(|&&i| i == f).count()).collect();
        assert_eq!(sizes, vec![3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
        assert!(ids.windows(2).all(|w| w[0] <= w[1]));
        assert!(kfold_ids(5, 10).is_err());
        assert!(kfold_ids(5, 1).is_err());
    }

    #[test]
    fn fold_ids_out_of_range_are_errors_not_overflows() {
        let e = fold_members(&[0, usize::MAX], 2).unwrap_err();
        assert_eq!(e, MetricsError::FoldOutOfRange { index: 1, fold: usize::MAX, n_folds: 2 });
        assert_eq!(fold_members(&[0, 0, 1], 3).unwrap(), vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn midpoint_of_adjacent_floats_is_the_lower_one() {
        let a = 1.0f64;
        let b = f64::from_bits(a.to_bits() + 1);
        assert_eq!(midpoint(a, b), a);
        assert_eq!(midpoint(1.0, 2.0), 1.5);
    }
}
