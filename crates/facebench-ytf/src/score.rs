//! Video-to-video scores from frame features.
//!
//! Every frame feature is L2-normalised first, so a dot product is a cosine. The modes:
//!
//! * `mean-feature` (ArcFace / InsightFace): each video's mean normalised frame feature,
//!   re-normalised; the score is the cosine of the two video features;
//! * `mean-pair` (FaceNet's YTF number): the mean cosine over all frame pairs
//!   (mathematically the dot product of the two un-renormalised mean features);
//! * `min-pair` / `max-pair`: the least / most similar frame pair.
//!
//! The all-pairs modes score a video pair through `facebench-score`'s blocked scorer with the
//! [`PairStats`] reducer (the `m x n` frame score matrix is streamed through, never kept).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use facebench_score::{score_blocked, score_pairs, BlockConfig, Matrix, Reducer, ScoreError, Tile};
use rayon::prelude::*;
use serde::{Serialize, Serializer};

use crate::{Error, Result};

/// How two videos are scored (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    MeanFeature,
    MeanPair,
    MinPair,
    MaxPair,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::MeanFeature, Mode::MeanPair, Mode::MinPair, Mode::MaxPair];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Mode::MeanFeature => "mean-feature",
            Mode::MeanPair => "mean-pair",
            Mode::MinPair => "min-pair",
            Mode::MaxPair => "max-pair",
        }
    }

    /// One line for reports: what the score is and who uses it.
    pub fn describe(self) -> &'static str {
        match self {
            Mode::MeanFeature => {
                "cosine of the re-normalised mean of L2-normalised frame features (ArcFace/InsightFace)"
            }
            Mode::MeanPair => "mean cosine over all frame pairs (FaceNet)",
            Mode::MinPair => "minimum cosine over all frame pairs",
            Mode::MaxPair => "maximum cosine over all frame pairs",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s.trim()).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown video scoring mode {s:?}: expected mean-feature, mean-pair, min-pair or max-pair"
            ))
        })
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The frame features of a set of videos: one L2-normalised row per frame, each video a
/// contiguous run of rows.
#[derive(Debug, Clone)]
pub struct VideoFeatures {
    dim: usize,
    data: Vec<f32>,
    ranges: Vec<Range<usize>>,
}

impl VideoFeatures {
    pub fn new(dim: usize) -> Self {
        VideoFeatures { dim, data: Vec::new(), ranges: Vec::new() }
    }

    /// Adds a video from its frame features (any norm; normalised here) and returns its
    /// index. A video without frames, a wrong width, a non-finite value or a zero feature is an
    /// error naming `what` and the frame.
    pub fn push<'a>(&mut self, what: &str, frames: impl IntoIterator<Item = &'a [f32]>) -> Result<usize> {
        let start = self.data.len() / self.dim.max(1);
        let mut n = 0;
        for (i, f) in frames.into_iter().enumerate() {
            let fail = |msg: String| Error::Invalid(format!("{what}, frame {}: {msg}", i + 1));
            if f.len() != self.dim {
                self.data.truncate(start * self.dim);
                return Err(fail(format!("feature has {} values, expected {}", f.len(), self.dim)));
            }
            let mut row = f.to_vec();
            if row.iter().any(|v| !v.is_finite()) || !facebench_core::normalize_row(&mut row) {
                self.data.truncate(start * self.dim);
                return Err(fail("feature is zero or not finite".into()));
            }
            self.data.extend_from_slice(&row);
            n += 1;
        }
        if n == 0 {
            return Err(Error::Invalid(format!("{what}: no frames to score")));
        }
        self.ranges.push(start..start + n);
        Ok(self.ranges.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of frames of video `v`.
    pub fn frames(&self, v: usize) -> usize {
        self.ranges[v].len()
    }

    /// The normalised frame features of video `v`, row-major.
    pub fn matrix(&self, v: usize) -> Matrix<'_> {
        let r = &self.ranges[v];
        Matrix::new(&self.data[r.start * self.dim..r.end * self.dim], r.len(), self.dim)
            .expect("rows were validated when pushed")
    }

    /// The mean of video `v`'s normalised frame features (in f64), re-normalised.
    pub fn mean_feature(&self, v: usize) -> Vec<f32> {
        let m = self.matrix(v);
        let mut sum = vec![0f64; self.dim];
        for i in 0..m.rows() {
            for (s, &x) in sum.iter_mut().zip(m.row(i)) {
                *s += f64::from(x);
            }
        }
        let norm = sum.iter().map(|s| s * s).sum::<f64>().sqrt();
        // Unit frame features can cancel exactly only in contrived cases; keep the zero mean
        // (its cosine to anything is 0) rather than dividing by zero.
        sum.iter().map(|s| if norm > 0.0 { (s / norm) as f32 } else { 0.0 }).collect()
    }
}

/// Sum, minimum and maximum of every score of a blocked pass (`count` = scores seen).
///
/// Exactness: the minimum and maximum do not depend on the order of tiles; the sum is kept per
/// tile (each summed in row-major order in f64) and the tile sums are added in tile order at
/// the end, so with fixed tile sizes ([`PAIR_BLOCKS`], which `score_blocked` never splits) the
/// mean is the same for any thread count.
#[derive(Debug, Clone, Default)]
pub struct PairStats {
    tiles: Vec<(usize, usize, f64)>,
    min: Option<f32>,
    max: Option<f32>,
    count: u64,
}

/// Tile sizes for [`PairStats`]: at the block-size floor of `score_blocked`, so it keeps them
/// for every problem size and thread count.
pub const PAIR_BLOCKS: BlockConfig = BlockConfig { query_block: 64, gallery_block: 64 };

impl PairStats {
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn min(&self) -> Option<f32> {
        self.min
    }
    pub fn max(&self) -> Option<f32> {
        self.max
    }
    /// Sum of all scores: tile sums added in (query, gallery) tile order.
    pub fn sum(&self) -> f64 {
        let mut t = self.tiles.clone();
        t.sort_by_key(|&(q, g, _)| (q, g));
        t.iter().map(|&(_, _, s)| s).sum()
    }
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum() / self.count as f64)
    }
}

impl Reducer for PairStats {
    fn fork(&self) -> Self {
        PairStats::default()
    }

    fn consume(&mut self, tile: &Tile<'_>) {
        let mut sum = 0f64;
        let mut seen = 0u64;
        for i in 0..tile.rows() {
            for (j, &s) in tile.row(i).iter().enumerate() {
                if tile.excluded().is_some_and(|e| e[j]) {
                    continue;
                }
                sum += f64::from(s);
                seen += 1;
                self.min = Some(self.min.map_or(s, |m| m.min(s)));
                self.max = Some(self.max.map_or(s, |m| m.max(s)));
            }
        }
        self.count += seen;
        self.tiles.push((tile.q0(), tile.g0(), sum));
    }

    fn merge(&mut self, other: Self) {
        self.tiles.extend(other.tiles);
        self.count += other.count;
        if let Some(v) = other.min {
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
        }
        if let Some(v) = other.max {
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
        }
    }
}

/// All-frame-pairs statistics of videos `a` and `b`.
pub fn pair_stats(v: &VideoFeatures, a: usize, b: usize) -> Result<PairStats> {
    score_blocked(v.matrix(a), v.matrix(b), PAIR_BLOCKS, PairStats::default()).map_err(score_err)
}

fn score_err(e: ScoreError) -> Error {
    Error::Invalid(format!("scoring: {e}"))
}

/// The score of each video pair `(a, b)` (indices into `v`) under `mode`, in pair order.
pub fn score_video_pairs(v: &VideoFeatures, pairs: &[(usize, usize)], mode: Mode) -> Result<Vec<f64>> {
    if let Some(&(a, b)) = pairs.iter().find(|&&(a, b)| a >= v.len() || b >= v.len()) {
        return Err(Error::Invalid(format!("video pair ({a}, {b}) out of range: {} videos", v.len())));
    }
    if mode == Mode::MeanFeature {
        let means: Vec<f32> = (0..v.len()).flat_map(|i| v.mean_feature(i)).collect();
        let m = Matrix::new(&means, v.len(), v.dim()).map_err(score_err)?;
        return Ok(score_pairs(m, m, pairs).map_err(score_err)?.into_iter().map(f64::from).collect());
    }
    pairs
        .par_iter()
        .map(|&(a, b)| {
            let s = pair_stats(v, a, b)?;
            let value = match mode {
                Mode::MeanPair => s.mean(),
                Mode::MinPair => s.min().map(f64::from),
                Mode::MaxPair => s.max().map(f64::from),
                Mode::MeanFeature => unreachable!("handled above"),
            };
            value.ok_or_else(|| Error::Invalid(format!("video pair ({a}, {b}) has no frame pairs")))
        })
        .collect()
}
