//! Verification and identification metrics, reproducing the reference tools exactly.
//!
//! Everything here works on plain numbers: `f64` scores, `bool` labels (`true` = same
//! identity), fold ids (`0..k`, every id present) and row-major `f32` feature slices.
//! Each ten-fold rule reimplements one tool's code path (grid, comparison operator, tie
//! rule, summary statistic) so that a number printed by facebench can be set beside the
//! tool's own; see [`Rule`] for the list and `scripts/reference_metrics.py` for the
//! step-by-step Python transcriptions the tests compare against. [`verification_metrics`]
//! bundles what a pair-verification protocol reports, once the protocol has chosen each
//! rule's scores. [`Published`] is a protocol file's published row of these figures, which
//! each protocol crate checks against what it reports ([`check_published`]).

mod features;
mod ident;
mod published;
mod roc;
mod settings;
mod verification;
mod verify;

pub use features::{
    facenet_distances, facenet_mean_subtracted_distances, mean_subtracted_cosines, squared_l2, FacenetMetric,
};
pub use ident::{cmc_curve_from_counts, cmc_from_counts, megaface_cmc, megaface_counts, CmcCurve};
pub use published::{check_published, Figures, Published};
pub use roc::{
    auc, eer, max_false_accepts, roc, roc_fold_averaged, tar_at_far_exact, tar_at_far_insightface, FoldAveragedRoc,
    InsightFaceVal, InsightFaceValFold, Roc, TarAtFar,
};
pub use settings::MetricSettings;
pub use verification::{verification_metrics, TarRow, VerificationMetrics, VerificationScores};
pub use verify::{kfold_ids, ten_fold, FoldReport, FoldResult, FoldScores};

use std::fmt;
use std::str::FromStr;

/// Why a metric could not be computed. Indices are 0-based positions in the input slices.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("length mismatch: {what} has {got} entries, expected {expected}")]
    LengthMismatch { what: &'static str, got: usize, expected: usize },
    #[error("no pairs given")]
    Empty,
    #[error("fold id {fold} at pair {index} is out of range: with {n_folds} pairs fold ids must be below {n_folds}, and 0..k all present")]
    FoldOutOfRange { index: usize, fold: usize, n_folds: usize },
    #[error("fold {fold} has no pairs (fold ids must be 0..{n_folds} with every id present)")]
    EmptyFold { fold: usize, n_folds: usize },
    #[error("need at least 2 folds, got {0}")]
    TooFewFolds(usize),
    #[error("the training folds for test fold {fold} contain no {missing} pairs")]
    TrainingSplitLacks { fold: usize, missing: &'static str },
    #[error("the pairs contain no {0} pairs")]
    MissingClass(&'static str),
    #[error("score of pair {index} is not finite ({value}){context}")]
    NonFinite { index: usize, value: f64, context: String },
    #[error("feature dimension must be > 0")]
    ZeroDim,
    #[error("feature slice of {len} floats is not a whole number of {dim}-dim rows ({what})")]
    RaggedFeatures { what: &'static str, len: usize, dim: usize },
    #[error("pair {index}: the {side} feature has zero norm{context}")]
    ZeroNorm { index: usize, side: &'static str, context: String },
    #[error("FAR target {0} must be in (0, 1]")]
    BadFarTarget(f64),
    #[error("{0}")]
    Invalid(String),
}

/// The ten-fold accuracy rule of one reference tool (see PROTOCOLS.md).
///
/// Scores are in the rule's own convention: InsightFace and FaceNet take distances
/// (same iff `d < thr`), the others take similarities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// `verification.py`: grid 0..4 step 0.01, first best, `dist < thr`, population std.
    InsightFace,
    /// `evaluation.m`: grid -1..1 step 1e-4, mean of all best thresholds, `s > thr` same and
    /// `s < thr` different (a score equal to the threshold is wrong either way).
    SphereFace,
    /// facenet `calculate_roc`: as InsightFace (its ancestor); distances may be squared L2 or
    /// arccos/pi, optionally after train-fold mean subtraction (see [`facenet_distances`]).
    FaceNet,
    /// FaceX-Zoo `LFWEvaluator`: 1000 thresholds from min to max train score (float32 scores),
    /// Youden argmax, `s > thr` same and `s < thr` different, ± = SEM. (FaceX-Zoo divides the
    /// correct count by a hard-coded 600; the fold's own size is used here, equal on LFW.)
    FaceXZoo,
    /// No grid: best midpoint between consecutive distinct training scores, smallest on ties,
    /// same iff `s > thr`.
    Exact,
}

impl Rule {
    /// Every rule, in a stable order.
    pub const ALL: [Rule; 5] = [Rule::InsightFace, Rule::SphereFace, Rule::FaceNet, Rule::FaceXZoo, Rule::Exact];

    /// True when scores are distances (smaller means more alike).
    pub fn lower_is_same(self) -> bool {
        matches!(self, Rule::InsightFace | Rule::FaceNet)
    }

    /// The lower-case name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Rule::InsightFace => "insightface",
            Rule::SphereFace => "sphereface",
            Rule::FaceNet => "facenet",
            Rule::FaceXZoo => "facexzoo",
            Rule::Exact => "exact",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rule {
    type Err = MetricsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL.into_iter().find(|r| r.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            MetricsError::Invalid(format!(
                "unknown rule {s:?}: expected one of insightface, sphereface, facenet, facexzoo, exact"
            ))
        })
    }
}

/// Checks that two parallel slices have the same length and are not empty.
pub(crate) fn check_parallel(n_scores: usize, n_labels: usize) -> Result<(), MetricsError> {
    if n_labels != n_scores {
        return Err(MetricsError::LengthMismatch { what: "is_same", got: n_labels, expected: n_scores });
    }
    if n_scores == 0 {
        return Err(MetricsError::Empty);
    }
    Ok(())
}

/// Rejects NaN and infinite scores, naming the first bad pair.
pub(crate) fn check_finite(scores: &[f64], context: &str) -> Result<(), MetricsError> {
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(MetricsError::NonFinite { index, value: scores[index], context: context.to_string() }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_round_trip() {
        for r in Rule::ALL {
            assert_eq!(r.to_string().parse::<Rule>().unwrap(), r);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.name()));
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), r);
        }
        assert!("arcface".parse::<Rule>().is_err());
        assert!(Rule::InsightFace.lower_is_same() && Rule::FaceNet.lower_is_same());
        assert!(!Rule::SphereFace.lower_is_same() && !Rule::FaceXZoo.lower_is_same() && !Rule::Exact.lower_is_same());
    }
}
