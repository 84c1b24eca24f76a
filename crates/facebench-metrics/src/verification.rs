//! The numbers a pair-verification protocol (LFW, YTF, ...) reports, in one place so that
//! every protocol measures them the same way. The protocol decides which scores each rule
//! sees; everything from there on is shared.

use serde::Serialize;

use crate::verify::fold_members;
use crate::{
    auc, eer, roc, roc_fold_averaged, tar_at_far_exact, tar_at_far_insightface, ten_fold, FoldAveragedRoc, FoldReport,
    FoldScores, InsightFaceVal, MetricsError, Roc, Rule, TarAtFar,
};

/// The scores a protocol chose for its pairs (all slices in the same pair order).
#[derive(Clone, Copy, Debug)]
pub struct VerificationScores<'a> {
    pub is_same: &'a [bool],
    /// Fold id of each pair (`0..k`, every id present).
    pub folds: &'a [usize],
    /// Each requested rule with the scores it thresholds, in report order.
    pub rules: &'a [(Rule, FoldScores<'a>)],
    /// Similarity (higher = more alike) behind ROC, AUC, EER, the fold-averaged ROC and the
    /// exact TAR@FAR.
    pub similarity: &'a [f64],
    /// Squared L2 distances behind InsightFace's `calculate_val` TAR@FAR.
    pub distance: &'a [f64],
}

/// One row of the TAR@FAR table.
#[derive(Debug, Clone, Serialize)]
pub struct TarRow {
    /// `exact` (pooled sorted scores) or `insightface` (`calculate_val`).
    pub method: &'static str,
    pub far_target: f64,
    /// Exact: the measured point, or "not measurable".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<TarAtFar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insightface: Option<InsightFaceVal>,
}

/// Ten-fold accuracy per rule, ROC, AUC, EER and TAR@FAR of one set of scores.
#[derive(Debug, Clone, Serialize)]
pub struct VerificationMetrics {
    /// One report per rule, in the order of [`VerificationScores::rules`].
    pub accuracy: Vec<FoldReport>,
    pub auc: f64,
    pub eer: f64,
    /// The InsightFace rows (one per FAR, in the order given), then the exact ones.
    pub tar_at_far: Vec<TarRow>,
    /// Pooled ROC of the similarity.
    pub roc: Roc,
    /// Mean, min and max TAR across folds, 10 FARs per decade from the smallest FAR every fold
    /// can show (1 / its negatives) up to 1.
    pub roc_folds: FoldAveragedRoc,
}

/// Measures `s`: each rule's ten-fold accuracy, then ROC/AUC/EER and the fold-averaged ROC of
/// the similarity, then TAR at each of `insightface_fars` (on the distances, per fold) and
/// each of `exact_fars` (on the pooled similarity).
pub fn verification_metrics(
    s: &VerificationScores,
    exact_fars: &[f64],
    insightface_fars: &[f64],
) -> Result<VerificationMetrics, MetricsError> {
    let accuracy = s
        .rules
        .iter()
        .map(|&(rule, scores)| ten_fold(rule, scores, s.is_same, s.folds))
        .collect::<Result<Vec<_>, _>>()?;
    let roc = roc(s.similarity, s.is_same)?;
    let auc = auc(&roc);
    let eer = eer(s.similarity, s.is_same)?;
    let members = fold_members(s.folds, s.is_same.len())?;
    let min_negatives = members.iter().map(|m| m.iter().filter(|&&i| !s.is_same[i]).count()).min().unwrap_or(1);
    let roc_folds = roc_fold_averaged(s.similarity, s.is_same, s.folds, &far_grid(min_negatives))?;
    let mut tar_at_far = Vec::new();
    for &far in insightface_fars {
        let v = tar_at_far_insightface(s.distance, s.is_same, s.folds, far)?;
        tar_at_far.push(TarRow { method: "insightface", far_target: far, exact: None, insightface: Some(v) });
    }
    for &far in exact_fars {
        let v = tar_at_far_exact(s.similarity, s.is_same, far)?;
        tar_at_far.push(TarRow { method: "exact", far_target: far, exact: Some(v), insightface: None });
    }
    Ok(VerificationMetrics { accuracy, auc, eer, tar_at_far, roc, roc_folds })
}

/// FARs 10 per decade from `1 / min_negatives` up to 1: the smallest FAR every fold can show
/// (below it a fold's curve would only repeat its TAR at FAR 0).
fn far_grid(min_negatives: usize) -> Vec<f64> {
    let lo = (1.0 / min_negatives.max(1) as f64).log10();
    let steps = (-lo * 10.0).ceil() as usize;
    (0..=steps).map(|i| 10f64.powf(lo - lo * i as f64 / steps.max(1) as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::squared_l2;

    #[test]
    fn far_grid_spans_one_over_negatives_to_one() {
        let g = far_grid(300);
        assert_eq!(g.len(), 26, "ceil(10 log10 300) + 1 points");
        assert!((g[0] - 1.0 / 300.0).abs() < 1e-15 && g[25] == 1.0);
        assert!(g.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(far_grid(1), vec![1.0]);
        assert_eq!(far_grid(0), vec![1.0], "no negatives: the one point FAR 1");
    }

    #[test]
    fn shared_metrics_equal_the_pieces_and_keep_the_order() {
        // 4 folds of 4 pairs on 2-D unit features: same pairs close, different ones apart.
        let n = 16;
        let angle = |i: usize| i as f64 * 0.37;
        let is_same: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let folds: Vec<usize> = (0..n).map(|i| i / 4).collect();
        let (mut l, mut r) = (Vec::new(), Vec::new());
        for (i, &same) in is_same.iter().enumerate() {
            let d = if same { 0.1 + 0.05 * i as f64 } else { 1.0 + 0.1 * i as f64 };
            l.extend([angle(i).cos() as f32, angle(i).sin() as f32]);
            r.extend([(angle(i) + d).cos() as f32, (angle(i) + d).sin() as f32]);
        }
        let dist = squared_l2(&l, &r, 2).unwrap();
        let cos: Vec<f64> = dist.iter().map(|d| 1.0 - d / 2.0).collect();
        let rules = [(Rule::Exact, FoldScores::Shared(&cos)), (Rule::InsightFace, FoldScores::Shared(&dist))];
        let s =
            VerificationScores { is_same: &is_same, folds: &folds, rules: &rules, similarity: &cos, distance: &dist };
        let m = verification_metrics(&s, &[0.5, 0.1], &[0.5]).unwrap();
        let rules_seen: Vec<Rule> = m.accuracy.iter().map(|a| a.rule).collect();
        assert_eq!(rules_seen, [Rule::Exact, Rule::InsightFace]);
        assert_eq!(m.accuracy[1], ten_fold(Rule::InsightFace, FoldScores::Shared(&dist), &is_same, &folds).unwrap());
        assert_eq!(m.roc, roc(&cos, &is_same).unwrap());
        assert_eq!(m.eer, eer(&cos, &is_same).unwrap());
        assert_eq!(m.roc_folds.far, far_grid(2), "2 negatives in every fold");
        let methods: Vec<(&str, f64)> = m.tar_at_far.iter().map(|t| (t.method, t.far_target)).collect();
        assert_eq!(methods, [("insightface", 0.5), ("exact", 0.5), ("exact", 0.1)]);
        assert_eq!(m.tar_at_far[2].exact, Some(TarAtFar::NotMeasurable { far_target: 0.1, negatives: 8 }));
        let v = serde_json::to_value(&m.tar_at_far[0]).unwrap();
        assert!(v.get("exact").is_none() && v["insightface"]["val_mean"].is_number(), "{v}");

        // A bad fold id is an error, not a panic.
        let bad_folds = vec![9; n];
        let s = VerificationScores { folds: &bad_folds, ..s };
        assert!(verification_metrics(&s, &[], &[]).is_err());
    }
}
