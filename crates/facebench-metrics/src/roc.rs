//! ROC, AUC, EER and TAR@FAR, pooled (exact from sorted scores) and InsightFace-style.

use crate::verify::{arange_0_4, fold_members};
use crate::{check_finite, check_parallel, MetricsError};

/// Pooled ROC in the similarity convention, one point per distinct score.
///
/// Point `i` is the operating point "same iff `s >= thresholds[i]`" (scikit-learn's
/// `roc_curve(..., drop_intermediate=False)`): the first point is `(0, 0)` with threshold
/// `+inf`, then thresholds run through the distinct scores in decreasing order, ending at
/// `(1, 1)`. `far` and `tar` are non-decreasing.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Roc {
    pub far: Vec<f64>,
    pub tar: Vec<f64>,
    pub thresholds: Vec<f64>,
}

/// Exact pooled ROC from the sorted scores (see [`Roc`]).
pub fn roc(similarity: &[f64], is_same: &[bool]) -> Result<Roc, MetricsError> {
    check_parallel(similarity.len(), is_same.len())?;
    check_finite(similarity, "")?;
    let n_pos = is_same.iter().filter(|&&b| b).count();
    let n_neg = is_same.len() - n_pos;
    if n_pos == 0 {
        return Err(MetricsError::MissingClass("same"));
    }
    if n_neg == 0 {
        return Err(MetricsError::MissingClass("different"));
    }
    let mut order: Vec<usize> = (0..similarity.len()).collect();
    order.sort_by(|&a, &b| similarity[b].total_cmp(&similarity[a]));
    let mut out = Roc { far: vec![0.0], tar: vec![0.0], thresholds: vec![f64::INFINITY] };
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let v = similarity[order[i]];
        while i < order.len() && similarity[order[i]] == v {
            if is_same[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.far.push(fp as f64 / n_neg as f64);
        out.tar.push(tp as f64 / n_pos as f64);
        out.thresholds.push(v);
    }
    Ok(out)
}

/// Area under the ROC by the trapezoidal rule (scikit-learn's `auc(fpr, tpr)`).
pub fn auc(roc: &Roc) -> f64 {
    roc.far.windows(2).zip(roc.tar.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0).sum()
}

/// Equal error rate: where the pooled ROC, drawn as straight segments between its exact
/// points, crosses FAR = FRR (= 1 - TAR). On the first segment where `far - (1 - tar)`
/// changes sign from negative to non-negative, interpolate linearly; there FAR = FRR = EER.
/// This is the same value as facenet's `brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)`
/// would give on this exact ROC.
pub fn eer(similarity: &[f64], is_same: &[bool]) -> Result<f64, MetricsError> {
    let r = roc(similarity, is_same)?;
    let d: Vec<f64> = r.far.iter().zip(&r.tar).map(|(f, t)| f - (1.0 - t)).collect();
    // d[0] = -1 and d[last] = 1, so a crossing exists.
    let i = d.iter().position(|&x| x >= 0.0).unwrap_or(d.len() - 1);
    if d[i] == 0.0 || i == 0 {
        return Ok(r.far[i]);
    }
    let t = -d[i - 1] / (d[i] - d[i - 1]);
    Ok(r.far[i - 1] + t * (r.far[i] - r.far[i - 1]))
}

/// TAR across folds at fixed FAR values, for a mean curve with a min/max band.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoldAveragedRoc {
    pub far: Vec<f64>,
    pub tar_mean: Vec<f64>,
    pub tar_min: Vec<f64>,
    pub tar_max: Vec<f64>,
}

/// Per fold, the ROC of that fold's own pairs; at each grid FAR `g`, the fold's TAR is the
/// best TAR of an operating point with FAR <= g (an achievable threshold, no interpolation;
/// below 1/negatives that is the TAR at FAR 0). Mean, min and max are across folds.
pub fn roc_fold_averaged(
    similarity: &[f64],
    is_same: &[bool],
    folds: &[usize],
    far_grid: &[f64],
) -> Result<FoldAveragedRoc, MetricsError> {
    check_parallel(similarity.len(), is_same.len())?;
    check_finite(similarity, "")?;
    let members = fold_members(folds, is_same.len())?;
    if let Some(&g) = far_grid.iter().find(|g| !(0.0..=1.0).contains(*g)) {
        return Err(MetricsError::Invalid(format!("FAR grid value {g} is outside [0, 1]")));
    }
    let k = members.len() as f64;
    let mut out = FoldAveragedRoc {
        far: far_grid.to_vec(),
        tar_mean: vec![0.0; far_grid.len()],
        tar_min: vec![f64::INFINITY; far_grid.len()],
        tar_max: vec![f64::NEG_INFINITY; far_grid.len()],
    };
    for (fold, idx) in members.iter().enumerate() {
        let s: Vec<f64> = idx.iter().map(|&i| similarity[i]).collect();
        let l: Vec<bool> = idx.iter().map(|&i| is_same[i]).collect();
        let r = roc(&s, &l).map_err(|e| MetricsError::Invalid(format!("fold {fold}: {e}")))?;
        for (j, &g) in far_grid.iter().enumerate() {
            let p = r.far.partition_point(|&f| f <= g) - 1;
            let t = r.tar[p];
            out.tar_mean[j] += t;
            out.tar_min[j] = out.tar_min[j].min(t);
            out.tar_max[j] = out.tar_max[j].max(t);
        }
    }
    for m in &mut out.tar_mean {
        *m /= k;
    }
    Ok(out)
}

/// TAR at a FAR target, or why it cannot be measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TarAtFar {
    /// `far` is the FAR actually reached (<= the target); same iff `s > threshold`.
    Measured { tar: f64, far: f64, threshold: f64 },
    /// The target is below 1/negatives: no threshold can show a FAR that small.
    NotMeasurable { far_target: f64, negatives: usize },
}

/// Exact pooled TAR@FAR: with `k` = the largest count such that `k / negatives <= far`,
/// the threshold is the (k+1)-th largest negative score and same iff `s > threshold`, which
/// maximises TAR subject to at most `k` false accepts. `NotMeasurable` iff `k == 0`, i.e.
/// `far < 1 / negatives`. When every negative may be accepted the threshold is the float just
/// below the smallest score.
pub fn tar_at_far_exact(similarity: &[f64], is_same: &[bool], far: f64) -> Result<TarAtFar, MetricsError> {
    check_parallel(similarity.len(), is_same.len())?;
    check_finite(similarity, "")?;
    if !(far > 0.0 && far <= 1.0) {
        return Err(MetricsError::BadFarTarget(far));
    }
    let mut neg: Vec<f64> = similarity.iter().zip(is_same).filter(|p| !*p.1).map(|p| *p.0).collect();
    let pos: Vec<f64> = similarity.iter().zip(is_same).filter(|p| *p.1).map(|p| *p.0).collect();
    if pos.is_empty() {
        return Err(MetricsError::MissingClass("same"));
    }
    let nn = neg.len();
    let k = max_false_accepts(far, nn as u64) as usize;
    if k == 0 {
        return Ok(TarAtFar::NotMeasurable { far_target: far, negatives: nn });
    }
    neg.sort_by(|a, b| b.total_cmp(a));
    let threshold = if k >= nn {
        let min = similarity.iter().copied().fold(f64::INFINITY, f64::min);
        min.next_down()
    } else {
        neg[k]
    };
    let fa = neg.iter().filter(|&&s| s > threshold).count();
    let ta = pos.iter().filter(|&&s| s > threshold).count();
    Ok(TarAtFar::Measured { tar: ta as f64 / pos.len() as f64, far: fa as f64 / nn as f64, threshold })
}

/// Largest `k <= n` with `k as f64 / n as f64 <= far` (the FAR as it would be printed): how
/// many of `n` impostors a threshold may accept at a FAR target. Robust to `far * n` rounding
/// below a whole number (0.29 * 100 = 28.999999999999996 allows 29).
pub fn max_false_accepts(far: f64, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut k = ((far * n as f64).floor() as u64).min(n);
    while k < n && (k + 1) as f64 / n as f64 <= far {
        k += 1;
    }
    while k > 0 && k as f64 / n as f64 > far {
        k -= 1;
    }
    k
}

/// InsightFace `calculate_val` result (VAL = TAR on distances).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InsightFaceVal {
    pub val_mean: f64,
    /// `np.std(val)`, population (ddof 0).
    pub val_std: f64,
    pub far_mean: f64,
    pub folds: Vec<InsightFaceValFold>,
}

/// One fold of [`InsightFaceVal`]: the interpolated threshold and the test-fold VAL/FAR.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InsightFaceValFold {
    pub fold: usize,
    pub threshold: f64,
    pub val: f64,
    pub far: f64,
}

/// InsightFace / facenet `calculate_val` on squared-L2 distances: per fold, the training
/// FAR at thresholds `np.arange(0, 4, 0.001)` (`d < thr` accepts), then
/// `interp1d(far_train, thresholds, kind='slinear')(far)` if `max(far_train) >= far`, else
/// threshold 0; VAL and FAR on the test fold.
///
/// `far_train` repeats values, which current SciPy rejects ("Expect x to not have
/// duplicates"); the SciPy these tools were run with sorted x stably (`argsort(kind=
/// "mergesort")`, the identity here since `far_train` is non-decreasing) and built, in
/// `make_interp_spline`'s k=1 special case, a degree-1 B-spline on knots
/// `[x0, x.., x_last]` with no duplicate check. That spline evaluates to the line
/// through the LAST point with `far_train <= far` and the FIRST point with `far_train > far`
/// (the right end when `far` equals the largest value) and to exactly 0 when those two points
/// share an x (target equal to a repeated maximum). That evaluation is reproduced here.
pub fn tar_at_far_insightface(
    distances: &[f64],
    is_same: &[bool],
    folds: &[usize],
    far: f64,
) -> Result<InsightFaceVal, MetricsError> {
    check_parallel(distances.len(), is_same.len())?;
    check_finite(distances, "")?;
    if !(far > 0.0 && far <= 1.0) {
        return Err(MetricsError::BadFarTarget(far));
    }
    let members = fold_members(folds, is_same.len())?;
    if members.len() < 2 {
        return Err(MetricsError::TooFewFolds(members.len()));
    }
    let thresholds: Vec<f64> = arange_0_4(0.001, 4000).collect();
    let mut out = Vec::with_capacity(members.len());
    for (fold, test_idx) in members.iter().enumerate() {
        let mut neg: Vec<f64> =
            (0..distances.len()).filter(|&i| folds[i] != fold && !is_same[i]).map(|i| distances[i]).collect();
        if neg.is_empty() {
            return Err(MetricsError::TrainingSplitLacks { fold, missing: "different" });
        }
        if !(0..distances.len()).any(|i| folds[i] != fold && is_same[i]) {
            return Err(MetricsError::TrainingSplitLacks { fold, missing: "same" });
        }
        neg.sort_by(f64::total_cmp);
        let nn = neg.len() as f64;
        let far_train: Vec<f64> = thresholds.iter().map(|&t| neg.partition_point(|&d| d < t) as f64 / nn).collect();
        let max_far = far_train.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let threshold = if max_far >= far {
            if far < far_train[0] {
                return Err(MetricsError::Invalid(format!(
                    "fold {fold}: FAR target {far} is below the training FAR at threshold 0 ({}); interp1d would raise",
                    far_train[0]
                )));
            }
            slinear_old_scipy(&far_train, &thresholds, far)
        } else {
            0.0
        };
        let (mut ta, mut fa, mut ns, mut nd) = (0usize, 0usize, 0usize, 0usize);
        for &i in test_idx {
            let accept = distances[i] < threshold;
            if is_same[i] {
                ns += 1;
                ta += usize::from(accept);
            } else {
                nd += 1;
                fa += usize::from(accept);
            }
        }
        if ns == 0 || nd == 0 {
            let missing = if ns == 0 { "same" } else { "different" };
            return Err(MetricsError::Invalid(format!(
                "test fold {fold} has no {missing} pairs: VAL/FAR would divide by zero"
            )));
        }
        out.push(InsightFaceValFold { fold, threshold, val: ta as f64 / ns as f64, far: fa as f64 / nd as f64 });
    }
    let k = out.len() as f64;
    let val_mean = out.iter().map(|f| f.val).sum::<f64>() / k;
    let var = out.iter().map(|f| (f.val - val_mean).powi(2)).sum::<f64>() / k;
    Ok(InsightFaceVal {
        val_mean,
        val_std: var.sqrt(),
        far_mean: out.iter().map(|f| f.far).sum::<f64>() / k,
        folds: out,
    })
}

/// `BSpline(t=[x0, x.., x_last], c=y, k=1)(xv)` for non-decreasing `x`, `x0 <= xv <= x_last`,
/// as SciPy's `find_interval` + de Boor compute it.
fn slinear_old_scipy(x: &[f64], y: &[f64], xv: f64) -> f64 {
    let m = x.len();
    // First index r >= 1 with x[r] > xv, else the last index.
    let r = (1..m).find(|&j| x[j] > xv).unwrap_or(m - 1);
    let (xa, xb) = (x[r - 1], x[r]);
    if xb == xa {
        return 0.0;
    }
    let w = 1.0 / (xb - xa);
    y[r - 1] * (w * (xb - xv)) + y[r] * (w * (xv - xa))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_false_accepts_is_robust_to_rounding() {
        assert_eq!(max_false_accepts(0.29, 100), 29); // 0.29 * 100 = 28.999999999999996
        assert_eq!(max_false_accepts(1e-3, 2700), 2);
        assert_eq!(max_false_accepts(1e-3, 999), 0);
        assert_eq!(max_false_accepts(1e-3, 1000), 1);
        assert_eq!(max_false_accepts(1.0, 7), 7);
    }

    #[test]
    fn slinear_picks_last_left_and_first_right_duplicate() {
        let x = [0.0, 0.0, 0.0, 0.1, 0.1, 0.2, 0.3, 0.3, 1.0, 1.0];
        let y: Vec<f64> = (0..10).map(f64::from).collect();
        // Values from scipy BSpline.construct_fast(np.r_[x[0], x, x[-1]], y, 1).
        for (xv, want) in
            [(0.0, 2.0), (0.05, 2.5), (0.1, 4.0), (0.15, 4.5), (0.3, 7.0), (0.5, 7.2857142857142865), (1.0, 0.0)]
        {
            assert!((slinear_old_scipy(&x, &y, xv) - want).abs() < 1e-12, "{xv}");
        }
    }
}
