//! YTF evaluation: which pairs can be scored, video scores per mode, and 10-fold accuracy over
//! the splits under the reference tools' rules (the same `facebench-metrics` code as LFW).
//!
//! Scores each rule sees:
//! * `mean-feature` has a feature per video, so every rule sees it as on LFW: InsightFace and
//!   facenet the squared L2 distance of the unit video features, SphereFace the cosine after
//!   subtracting the training splits' mean video feature, FaceX-Zoo and exact the cosine;
//! * the frame-pair modes give only a score `s`: InsightFace and facenet take `2 - 2 s` (what
//!   the squared L2 of unit vectors with cosine `s` would be), SphereFace and the others take
//!   `s` itself (there is no feature whose mean could be subtracted; the results say so).
//!
//! Ten-fold accuracy needs, in every split, at least one same and one different pair (each
//! split is a test fold whose threshold comes from the other nine, and each fold's ROC needs
//! both classes). With fewer pairs (a partial data set) no accuracy is invented: the result
//! says why it cannot be measured and keeps the pair scores.

use std::collections::BTreeMap;

use facebench_core::Embeddings;
use facebench_metrics::{
    self as metrics, FoldAveragedRoc, FoldReport, FoldScores, MetricSettings, Roc, Rule, TarRow, VerificationScores,
};
use serde::Serialize;

use crate::layout::{FrameSelection, Layout, VideoIndex};
use crate::score::{score_video_pairs, Mode, VideoFeatures};
use crate::splits::{Splits, VideoId, VideoPair};
use crate::{Error, Result};

/// Which videos named by `splits.txt` were found, and which pairs have both.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Distinct videos `splits.txt` names (3,226).
    pub videos_named: usize,
    pub videos_found: usize,
    /// Indices into `Splits::pairs` of the pairs whose two videos were both found.
    pub complete_pairs: Vec<usize>,
    /// The first pair (file order) with a missing video, and that video.
    pub first_missing: Option<(usize, VideoId)>,
}

impl Coverage {
    pub fn of(splits: &Splits, index: &VideoIndex) -> Coverage {
        let named = splits.videos();
        let found = named.iter().filter(|v| index.videos.contains_key(*v)).count();
        let mut complete = Vec::new();
        let mut first_missing = None;
        for (i, p) in splits.pairs.iter().enumerate() {
            let missing = [&p.left, &p.right].into_iter().find(|v| !index.videos.contains_key(*v));
            match missing {
                None => complete.push(i),
                Some(v) if first_missing.is_none() => first_missing = Some((i, v.clone())),
                Some(_) => {}
            }
        }
        Coverage { videos_named: named.len(), videos_found: found, complete_pairs: complete, first_missing }
    }

    /// Ok when every video is present; otherwise the error a run without `--allow-missing`
    /// stops with: how many videos were found, and which split/pair needs the first missing one.
    pub fn require_complete(&self, splits: &Splits, index: &VideoIndex) -> Result<()> {
        let Some((i, v)) = &self.first_missing else { return Ok(()) };
        let p = &splits.pairs[*i];
        Err(Error::Invalid(format!(
            "found {} of the {} videos that {} names (the YTF dataset has {}) under {} ({} layout); \
             split {} pair {} ({}:{}) needs {v}, the first missing one. \
             --allow-missing evaluates only the {} of {} pairs whose both videos exist",
            self.videos_found,
            self.videos_named,
            splits.path.display(),
            splits.spec.dataset_videos,
            index.root.display(),
            index.layout.name(),
            p.split,
            p.pair,
            splits.path.display(),
            p.line,
            self.complete_pairs.len(),
            splits.pairs.len()
        )))
    }
}

/// What YTF reports by default: the two rules the YTF literature uses (InsightFace,
/// SphereFace/CosFace), TAR at FAR 1e-1..1e-3 exact and 1e-3 InsightFace-style.
pub fn default_settings() -> MetricSettings {
    MetricSettings { rules: vec![Rule::InsightFace, Rule::SphereFace], ..MetricSettings::default() }
}

/// Everything measured from one mode's scores (field names as in LFW's results).
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub accuracy: Vec<FoldReport>,
    /// The score each rule thresholds, in words.
    pub rule_scores: BTreeMap<String, String>,
    pub auc: f64,
    pub eer: f64,
    pub tar_at_far: Vec<TarRow>,
    /// Pooled ROC of the mode's score.
    pub roc: Roc,
    /// Mean, min and max TAR across splits on a log-FAR grid.
    pub roc_folds: FoldAveragedRoc,
}

/// The results of one scoring mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub mode: Mode,
    pub description: &'static str,
    #[serde(flatten)]
    pub metrics: Option<Metrics>,
    /// Why accuracy and ROC could not be measured (too few pairs), when they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_measurable: Option<String>,
    /// One score per evaluated pair (cosine-like: higher = more alike), in pair order.
    #[serde(skip)]
    pub scores: Vec<f64>,
}

/// One evaluated pair with its score in every mode.
#[derive(Debug, Clone, Serialize)]
pub struct PairRow {
    pub split: usize,
    pub pair: usize,
    pub left: String,
    pub right: String,
    pub is_same: bool,
    pub frames_left: usize,
    pub frames_right: usize,
    /// mode name -> score.
    pub scores: BTreeMap<String, f64>,
}

/// A whole YTF evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct YtfResults {
    pub splits_file: String,
    pub layout: Layout,
    pub frames_root: String,
    pub frame_selection: FrameSelection,
    pub videos_named: usize,
    pub videos_found: usize,
    pub dataset_videos: usize,
    pub pairs_total: usize,
    pub pairs_evaluated: usize,
    /// True when some pairs were left out because a video is missing (`--allow-missing`).
    pub partial: bool,
    /// Frames scored, over the distinct videos of the evaluated pairs.
    pub frames_used: usize,
    /// One entry per requested mode, the first being the headline.
    pub modes: Vec<ModeResult>,
    pub pairs: Vec<PairRow>,
}

impl YtfResults {
    /// The first line every report starts with when the evaluation is partial.
    pub fn partial_line(&self) -> Option<String> {
        self.partial.then(|| {
            format!(
                "PARTIAL EVALUATION: {} of {} pairs ({} of the {} videos splits.txt names were found; the dataset has {}).",
                self.pairs_evaluated, self.pairs_total, self.videos_found, self.videos_named, self.dataset_videos
            )
        })
    }
}

/// Why `n_splits`-fold accuracy cannot be measured on `pairs`, or None if it can.
pub fn not_measurable(pairs: &[&VideoPair], n_splits: usize) -> Option<String> {
    let (mut empty, mut no_same, mut no_diff) = (Vec::new(), Vec::new(), Vec::new());
    for s in 1..=n_splits {
        let same = pairs.iter().filter(|p| p.split == s && p.is_same).count();
        let diff = pairs.iter().filter(|p| p.split == s && !p.is_same).count();
        match (same, diff) {
            (0, 0) => empty.push(s.to_string()),
            (0, _) => no_same.push(s.to_string()),
            (_, 0) => no_diff.push(s.to_string()),
            _ => {}
        }
    }
    let problems: Vec<String> = [(empty, "no pairs"), (no_same, "no same pairs"), (no_diff, "no different pairs")]
        .into_iter()
        .filter(|(v, _)| !v.is_empty())
        .map(|(v, what)| format!("{} {}: {what}", if v.len() == 1 { "split" } else { "splits" }, v.join(", ")))
        .collect();
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "10-fold accuracy and ROC cannot be measured on {} pair(s): {} (every split needs a same and a different pair)",
        pairs.len(),
        problems.join("; ")
    ))
}

/// Accuracy under each rule, ROC, AUC, EER and TAR@FAR from one mode's scores. `features`:
/// the unit video features of each pair's left and right video (row-major, `dim` wide) when
/// the mode has them (`mean-feature`). The pairs of `n_splits` splits must be measurable
/// ([`not_measurable`]).
pub fn metrics_from_scores(
    pairs: &[&VideoPair],
    n_splits: usize,
    cosine: &[f64],
    features: Option<(&[f32], &[f32], usize)>,
    settings: &MetricSettings,
) -> Result<Metrics> {
    if let Some(why) = not_measurable(pairs, n_splits) {
        return Err(Error::Invalid(why));
    }
    let labels: Vec<bool> = pairs.iter().map(|p| p.is_same).collect();
    let folds: Vec<usize> = pairs.iter().map(|p| p.split - 1).collect();
    let m = Error::Metrics;
    let distances = match features {
        Some((l, r, dim)) => metrics::squared_l2(l, r, dim).map_err(m)?,
        None => cosine.iter().map(|s| 2.0 - 2.0 * s).collect(),
    };
    // SphereFace subtracts the training splits' mean feature, where there is one.
    let mean_subtracted = match features {
        Some((l, r, dim)) if settings.rules.contains(&Rule::SphereFace) => {
            Some(metrics::mean_subtracted_cosines(l, r, dim, &folds).map_err(m)?)
        }
        _ => None,
    };
    let mut rules = Vec::new();
    let mut rule_scores = BTreeMap::new();
    for &rule in &settings.rules {
        let (scores, how) = match rule {
            Rule::InsightFace | Rule::FaceNet if features.is_some() => {
                (FoldScores::Shared(&distances), "squared L2 distance of the unit video features")
            }
            Rule::InsightFace | Rule::FaceNet => {
                (FoldScores::Shared(&distances), "2 - 2 x score (the squared L2 of unit vectors with that cosine)")
            }
            Rule::SphereFace => match &mean_subtracted {
                Some(per_fold) => (
                    FoldScores::PerTestFold(per_fold),
                    "cosine after subtracting the training splits' mean video feature",
                ),
                None => (
                    FoldScores::Shared(cosine),
                    "the score itself (a frame-pair score has no feature mean to subtract)",
                ),
            },
            Rule::FaceXZoo | Rule::Exact => (FoldScores::Shared(cosine), "the score (cosine)"),
        };
        rules.push((rule, scores));
        rule_scores.insert(rule.to_string(), how.to_string());
    }
    let scores =
        VerificationScores { is_same: &labels, folds: &folds, rules: &rules, similarity: cosine, distance: &distances };
    let v = metrics::verification_metrics(&scores, &settings.exact_fars, &settings.insightface_fars).map_err(m)?;
    Ok(Metrics {
        accuracy: v.accuracy,
        rule_scores,
        auc: v.auc,
        eer: v.eer,
        tar_at_far: v.tar_at_far,
        roc: v.roc,
        roc_folds: v.roc_folds,
    })
}

/// Scores every pair whose two videos are in `index` (all of them unless `allow_missing`)
/// under each mode and measures what can be measured. `frames` holds a feature for every
/// selected frame key of those videos (already flip-fused if wanted; normalised here).
pub fn evaluate(
    splits: &Splits,
    index: &VideoIndex,
    selection: FrameSelection,
    frames: &Embeddings,
    modes: &[Mode],
    settings: &MetricSettings,
    allow_missing: bool,
) -> Result<YtfResults> {
    if modes.is_empty() {
        return Err(Error::Invalid("no video scoring mode given".into()));
    }
    let coverage = Coverage::of(splits, index);
    if !allow_missing {
        coverage.require_complete(splits, index)?;
    }
    let pairs: Vec<&VideoPair> = coverage.complete_pairs.iter().map(|&i| &splits.pairs[i]).collect();
    if pairs.is_empty() {
        return Err(Error::Invalid(format!(
            "no pair of {} has both videos under {} (found {} of the {} named videos)",
            splits.path.display(),
            index.root.display(),
            coverage.videos_found,
            coverage.videos_named
        )));
    }

    // One feature block per distinct video of the evaluated pairs.
    let mut feats = VideoFeatures::new(frames.dim());
    let mut slot: BTreeMap<&VideoId, usize> = BTreeMap::new();
    for p in &pairs {
        for v in [&p.left, &p.right] {
            if slot.contains_key(v) {
                continue;
            }
            let keys = index.selected_keys(v, &selection);
            let rows: Vec<&[f32]> = keys
                .iter()
                .map(|k| {
                    frames
                        .get(k)
                        .map_err(|_| Error::Invalid(format!("{k}: frame of {v} is not in the embedding store")))
                })
                .collect::<Result<_>>()?;
            slot.insert(v, feats.push(&format!("video {v}"), rows)?);
        }
    }
    let idx: Vec<(usize, usize)> = pairs.iter().map(|p| (slot[&p.left], slot[&p.right])).collect();
    let n_splits = splits.spec.splits;
    let why_not = not_measurable(&pairs, n_splits);

    let mut results = Vec::new();
    for &mode in modes {
        let scores = score_video_pairs(&feats, &idx, mode)?;
        let metrics = match &why_not {
            Some(_) => None,
            None if mode == Mode::MeanFeature => {
                let (mut l, mut r) = (Vec::new(), Vec::new());
                for &(a, b) in &idx {
                    l.extend(feats.mean_feature(a));
                    r.extend(feats.mean_feature(b));
                }
                Some(metrics_from_scores(&pairs, n_splits, &scores, Some((&l, &r, feats.dim())), settings)?)
            }
            None => Some(metrics_from_scores(&pairs, n_splits, &scores, None, settings)?),
        };
        results.push(ModeResult {
            mode,
            description: mode.describe(),
            metrics,
            not_measurable: why_not.clone(),
            scores,
        });
    }

    let rows = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| PairRow {
            split: p.split,
            pair: p.pair,
            left: p.left.to_string(),
            right: p.right.to_string(),
            is_same: p.is_same,
            frames_left: feats.frames(idx[i].0),
            frames_right: feats.frames(idx[i].1),
            scores: results.iter().map(|r| (r.mode.name().to_string(), r.scores[i])).collect(),
        })
        .collect();
    Ok(YtfResults {
        splits_file: splits.path.display().to_string(),
        layout: index.layout,
        frames_root: index.root.display().to_string(),
        frame_selection: selection,
        videos_named: coverage.videos_named,
        videos_found: coverage.videos_found,
        dataset_videos: splits.spec.dataset_videos,
        pairs_total: splits.pairs.len(),
        pairs_evaluated: pairs.len(),
        partial: pairs.len() < splits.pairs.len(),
        frames_used: (0..feats.len()).map(|v| feats.frames(v)).sum(),
        modes: results,
        pairs: rows,
    })
}

impl YtfResults {
    /// `pairs_scores.csv`: `split,pair,left,right,is_same,frames_left,frames_right` and one
    /// score column per mode.
    pub fn write_pair_scores_csv(&self, path: &std::path::Path) -> Result<()> {
        let mut s = String::from("split,pair,left,right,is_same,frames_left,frames_right");
        for m in &self.modes {
            s += &format!(",{}", m.mode);
        }
        s.push('\n');
        for p in &self.pairs {
            s += &format!(
                "{},{},{},{},{},{},{}",
                p.split, p.pair, p.left, p.right, p.is_same as u8, p.frames_left, p.frames_right
            );
            for m in &self.modes {
                s += &format!(",{}", p.scores[m.mode.name()]);
            }
            s.push('\n');
        }
        std::fs::write(path, s).map_err(|e| Error::io(path, e))
    }
}
