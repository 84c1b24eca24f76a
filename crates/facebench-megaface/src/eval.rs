//! The evaluation: one blocked pass over the distractors for every size, then CMC and
//! verification read-outs per size.

use facebench_metrics::{cmc_curve_from_counts, cmc_from_counts, max_false_accepts, CmcCurve};
use facebench_score::{dot, score_blocked, BlockConfig, Matrix};
use serde::{Deserialize, Serialize};

use crate::data::{DistractorSet, ProbeSet};
use crate::lowp::{self, Format};
use crate::reduce::{bin_of, Plan, SizeReducer};
use crate::{Error, Result};

/// Settings of [`evaluate`]. `Default` is the published protocol: CMC ranks 1..10, TAR at
/// FAR 1e-3..1e-6, a 2,000-bin impostor histogram for the ROC beyond the exact region.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Where the features come from, printed with every number ("MegaFace", "synthetic",
    /// "LFW-as-MegaFace", ...): a stand-in must never read as MegaFace.
    pub dataset: String,
    /// CMC ranks 1..=max_rank (the full curve is computed anyway).
    pub max_rank: usize,
    /// FAR targets of the exact TAR@FAR read-outs.
    pub fars: Vec<f64>,
    /// Impostor-histogram bins over [-1, 1] for the ROC above the smallest-FAR region
    /// (0: the ROC stops where the kept top impostor scores end).
    pub roc_bins: usize,
    /// Tile sizes of the blocked scorer (results do not depend on them).
    pub block: BlockConfig,
    /// Most distractor rows per scoring step. Steps run one after another so that the top
    /// impostor buffers of later steps start from the bound reached so far (memory stays
    /// near one top-k set) and progress can be reported.
    pub chunk_rows: usize,
    /// f32 (exact, the default) or an approximate mode (bf16, int8).
    pub scoring: Scoring,
}

/// How scores are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// f32 GEMM (`facebench-score`): every score equals `facebench_score::dot`.
    F32,
    /// Features rounded to bfloat16, AVX-512 BF16 kernel: about 2x the f32 GEMM rate, approximate
    /// (labelled in the results); needs [`crate::bf16_available`].
    Bf16,
    /// Features quantised to int8 per vector (scale 127 / max |coordinate|), AVX-512 VNNI
    /// kernel with exact i32 sums: about 4x the f32 GEMM rate, approximate (labelled);
    /// needs [`crate::int8_available`].
    Int8,
}

impl Scoring {
    /// "f32", "bf16", "int8".
    pub fn name(self) -> &'static str {
        match self {
            Scoring::F32 => "f32",
            Scoring::Bf16 => "bf16",
            Scoring::Int8 => "int8",
        }
    }

    /// The low-precision kernel format, `None` for f32.
    pub(crate) fn format(self) -> Option<Format> {
        match self {
            Scoring::F32 => None,
            Scoring::Bf16 => Some(Format::Bf16),
            Scoring::Int8 => Some(Format::Int8),
        }
    }
}

impl std::str::FromStr for Scoring {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Scoring::F32),
            "bf16" => Ok(Scoring::Bf16),
            "int8" => Ok(Scoring::Int8),
            _ => Err(format!("unknown scoring mode {s:?} (f32, bf16 or int8)")),
        }
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            dataset: "MegaFace".into(),
            max_rank: 10,
            fars: vec![1e-3, 1e-4, 1e-5, 1e-6],
            roc_bins: 2000,
            block: BlockConfig::default(),
            chunk_rows: 131_072,
            scoring: Scoring::F32,
        }
    }
}

/// Raw lists, or InsightFace's noise-cleaned variant ("R" in the ArcFace paper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    #[serde(rename = "raw")]
    Raw,
    #[serde(rename = "R")]
    R,
}

impl Variant {
    pub fn label(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::R => "R",
        }
    }
}

/// A point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub fpr: f64,
    pub tpr: f64,
}

/// Exact TAR at a FAR target, from the kept top impostor scores: with `a` the most false
/// accepts allowed (`a / impostors <= far`), the threshold is the (a+1)-th largest impostor
/// score and a pair is accepted iff its score is strictly greater.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TarExact {
    /// `far` is the FAR actually reached (<= the target). `threshold: None` means every
    /// scoring impostor may be accepted (fewer of them than the allowance).
    Measured { tar: f64, far: f64, threshold: Option<f32> },
    /// The target is below 1 / impostors.
    NotMeasurable { impostors: u64 },
}

/// TAR at one FAR target: the exact value and the two devkit-style read-outs of the ROC curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TarAtFar {
    pub far: f64,
    pub exact: TarExact,
    /// Devkit-style: the ROC point whose FPR is nearest the target in log10 (FPR > 0 only).
    pub devkit_nearest: Option<RocPoint>,
    /// Devkit-style: TPR linearly interpolated in log10(FPR) between the ROC points around
    /// the target (`None` below the smallest positive FPR).
    pub devkit_log_interp: Option<f64>,
}

impl TarAtFar {
    /// The exact TAR, if measurable.
    pub fn tar(&self) -> Option<f64> {
        match self.exact {
            TarExact::Measured { tar, .. } => Some(tar),
            TarExact::NotMeasurable { .. } => None,
        }
    }
}

/// A ROC curve, about 20 points per decade of FPR, ending at (1, 1). Up to `exact_to_fpr`
/// the points are exact (thresholds at the kept top impostor scores). Beyond, they come from
/// an impostor-score histogram at bin edges (accept iff bin(score) >= edge bin, a threshold
/// rule): exact when `sampled_beyond` is false, otherwise FPRs estimated from a fixed 1-in-k
/// sample of the distractors (at least 8,192 of each size's rows), which is what keeps the
/// histogram from costing as much as the GEMM at 1M.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    pub exact_to_fpr: f64,
    pub sampled_beyond: bool,
}

/// Results of one distractor size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeResults {
    /// Nominal size (file names).
    pub size: usize,
    /// Distractors in this size's list (noisy ones included: they count as impostors that
    /// never score, as in InsightFace's cleaning).
    pub distractors: usize,
    pub noisy_distractors: usize,
    /// Probe x distractor pairs: the FAR denominator.
    pub impostors: u64,
    /// Rank-1 identification rate (the headline "Id").
    pub rank1: f64,
    /// CMC at ranks 1..=max_rank.
    pub cmc: Vec<f64>,
    pub cmc_curve: CmcCurve,
    pub tar_at_far: Vec<TarAtFar>,
    pub roc: RocCurve,
}

/// Everything one evaluation produced (serialised as `results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MegafaceResults {
    pub dataset: String,
    pub variant: Variant,
    pub scoring: Scoring,
    pub probes: usize,
    pub identities: usize,
    pub dim: usize,
    /// Ordered (query, gallery) same-identity pairs of the identification rule.
    pub mate_pairs: u64,
    /// Unordered same-identity pairs: the TAR denominator.
    pub genuine_pairs: u64,
    pub max_rank: usize,
    pub sizes: Vec<SizeResults>,
}

impl MegafaceResults {
    /// One line per size, each number labelled with the dataset and raw / R.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for s in &self.sizes {
            let v = match self.scoring {
                Scoring::F32 => self.variant.label().to_string(),
                m => format!("{}, {} scoring", self.variant.label(), m.name()),
            };
            out += &format!("{} ({v}) {} distractors: Id rank-1 {:.4}", self.dataset, s.size, s.rank1);
            for t in &s.tar_at_far {
                match t.tar() {
                    Some(tar) => out += &format!(", TAR@FAR={:e} {tar:.4} (exact)", t.far),
                    None => out += &format!(", TAR@FAR={:e} n/a (below 1/impostors)", t.far),
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Runs MegaFace Challenge 1 on `probes` against every size of `distractors` in one pass of
/// the blocked scorer, on the current rayon pool. `progress(done, total)` is called after
/// each step of `chunk_rows` distractor rows.
///
/// The variant is R when both sets had their noise lists applied, raw when neither did;
/// anything in between is an error (a half-cleaned number must not exist).
pub fn evaluate(
    probes: &ProbeSet,
    distractors: &DistractorSet,
    cfg: &EvalConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<MegafaceResults> {
    let variant = match (probes.is_cleaned(), distractors.is_cleaned()) {
        (false, false) => Variant::Raw,
        (true, true) => Variant::R,
        _ => {
            return Err(Error::Invalid("noise cleaning must apply to both probes and distractors (or neither)".into()))
        }
    };
    if probes.dim() != distractors.dim() {
        return Err(Error::Invalid(format!(
            "probe features have dimension {}, distractor features {}",
            probes.dim(),
            distractors.dim()
        )));
    }
    if cfg.max_rank == 0 || cfg.chunk_rows == 0 {
        return Err(Error::Invalid("max_rank and chunk_rows must be at least 1".into()));
    }
    if let Some(f) = cfg.fars.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
        return Err(Error::Invalid(format!("FAR target {f} is not in (0, 1]")));
    }
    let n = probes.len();
    let ids = probes.identities();

    if let Some(f) = cfg.scoring.format() {
        if !f.available() {
            return Err(Error::Invalid(format!(
                "{} scoring needs a CPU with {}, which this one lacks (use --scoring f32)",
                cfg.scoring.name(),
                f.requirement()
            )));
        }
        if f == Format::Int8 && probes.dim() > lowp::INT8_MAX_DIM {
            return Err(Error::Invalid(format!(
                "int8 scoring supports dimensions up to {} (i32 sums), not {}",
                lowp::INT8_MAX_DIM,
                probes.dim()
            )));
        }
    }
    // Scores within each identity, computed the way distractor scores are (ties stay ties).
    let mut by_id: Vec<Vec<usize>> = vec![Vec::new(); probes.identity_names().len()];
    for (i, &id) in ids.iter().enumerate() {
        by_id[id].push(i);
    }
    let within: Vec<Vec<f32>> = by_id
        .iter()
        .map(|rows| {
            let m = rows.len();
            let mut out = vec![0f32; m * m];
            match cfg.scoring.format() {
                None => {
                    for (a, &i) in rows.iter().enumerate() {
                        for (b, &j) in rows.iter().enumerate() {
                            out[a * m + b] = dot(probes.row(i), probes.row(j));
                        }
                    }
                }
                Some(f) => {
                    let data: Vec<f32> = rows.iter().flat_map(|&i| probes.row(i).iter().copied()).collect();
                    let (q, g) = (
                        lowp::PackedRows::pack(f, &data, probes.dim()),
                        lowp::PackedPanels::pack(f, &data, probes.dim()),
                    );
                    lowp::score_tile(&q, 0, m, &g, 0, m, &mut out);
                }
            }
            out
        })
        .collect();
    let pos_in_id: Vec<usize> = {
        let mut p = vec![0; n];
        by_id.iter().for_each(|rows| rows.iter().enumerate().for_each(|(k, &i)| p[i] = k));
        p
    };
    // Mate pairs (q, g), q-major, g ascending; the thresholds of q are its mate scores.
    let mut offsets = vec![0usize];
    let mut mate = Vec::new();
    for q in 0..n {
        let (rows, w) = (&by_id[ids[q]], &within[ids[q]]);
        for (b, _) in rows.iter().enumerate().filter(|&(_, &g)| g != q) {
            mate.push(w[pos_in_id[q] * rows.len() + b]);
        }
        offsets.push(mate.len());
    }
    if mate.is_empty() {
        return Err(Error::Invalid("no identity has two probe images: there is nothing to identify".into()));
    }
    let mut order: Vec<usize> = (0..mate.len()).collect();
    for w in offsets.windows(2) {
        order[w[0]..w[1]].sort_by(|&a, &b| mate[a].total_cmp(&mate[b]));
    }
    let sorted: Vec<f32> = order.iter().map(|&i| mate[i]).collect();
    // Genuine pairs: unordered, each once, score(a, b) with a before b in list order.
    let mut genuine: Vec<f32> = Vec::new();
    for (rows, w) in by_id.iter().zip(&within) {
        for a in 0..rows.len() {
            genuine.extend((a + 1..rows.len()).map(|b| w[a * rows.len() + b]));
        }
    }
    genuine.sort_unstable_by(f32::total_cmp);

    let sizes = distractors.sizes();
    let impostors: Vec<u64> = sizes.iter().map(|s| n as u64 * s.count as u64).collect();
    let keep: Vec<usize> = impostors
        .iter()
        .map(|&ni| {
            let a = cfg.fars.iter().map(|&f| max_false_accepts(f, ni)).max().unwrap_or(0);
            ((a + 1).max(ni.min(1024))).min(ni.max(1)) as usize
        })
        .collect();
    let plan = Plan::new(&distractors.scoring_member(), sizes.len(), offsets, sorted, order, keep, cfg.roc_bins);

    let q = Matrix::new(probes.data(), n, probes.dim())?;
    let gallery = Matrix::new(distractors.data(), distractors.rows(), distractors.dim())?;
    let packed_q = cfg.scoring.format().map(|f| lowp::PackedRows::pack(f, probes.data(), probes.dim()));
    // One packed-gallery buffer for all steps (low-precision modes).
    let mut packed_g = packed_q.as_ref().map(|pq| lowp::PackedPanels::pack(pq.format(), &[], probes.dim()));
    let total = distractors.rows();
    let mut acc = SizeReducer::new(&plan);
    let mut done = 0;
    // A small first step, about as many scores as the largest top-score buffer keeps, so
    // that the buffers get a bound before large steps fork many partials.
    let most_kept = plan.keep.iter().copied().max().unwrap_or(1);
    let mut step = most_kept.div_ceil(n).clamp(64, 4096).min(cfg.chunk_rows);
    while done < total {
        let end = (done + step).min(total);
        let part = acc.fork_at(done);
        let slice = gallery.slice_rows(done..end);
        let part = match (&packed_q, &mut packed_g) {
            (Some(pq), Some(pg)) => lowp_blocked(pq, pg, slice, cfg.block, part)?,
            _ => score_blocked(q, slice, cfg.block, part)?,
        };
        facebench_score::Reducer::merge(&mut acc, part);
        done = end;
        step = (step * 2).min(cfg.chunk_rows);
        progress(done, total);
    }

    let counts = acc.counts();
    let noisy = distractors.noisy_per_size();
    let mut out_sizes = Vec::new();
    for (b, info) in sizes.iter().enumerate() {
        let c = &counts[b];
        let cmc = cmc_from_counts(c, cfg.max_rank)?;
        let cmc_curve = cmc_curve_from_counts(c, info.count as u64)?;
        let top = acc.top_of(b);
        let (hist, sampled) = acc.hist_of(b);
        let roc = roc_curve(&top, &hist, sampled, &genuine, impostors[b]);
        let tar_at_far = cfg
            .fars
            .iter()
            .map(|&far| TarAtFar {
                far,
                exact: tar_exact(&top, &genuine, impostors[b], far),
                devkit_nearest: nearest_point(&roc, far),
                devkit_log_interp: log_interp(&roc, far),
            })
            .collect();
        out_sizes.push(SizeResults {
            size: info.size,
            distractors: info.count,
            noisy_distractors: noisy[b],
            impostors: impostors[b],
            rank1: cmc[0],
            cmc,
            cmc_curve,
            tar_at_far,
            roc,
        });
    }
    Ok(MegafaceResults {
        dataset: cfg.dataset.clone(),
        variant,
        scoring: cfg.scoring,
        probes: n,
        identities: probes.identity_names().len(),
        dim: probes.dim(),
        mate_pairs: mate.len() as u64,
        genuine_pairs: genuine.len() as u64,
        max_rank: cfg.max_rank,
        sizes: out_sizes,
    })
}

/// Blocked scoring in a low-precision mode: the same tiles, visiting order and reducer
/// contract as `facebench_score::score_blocked`, with the mode's kernel (gallery blocks
/// rounded up to the kernel's panel width).
fn lowp_blocked<R: facebench_score::Reducer>(
    q: &lowp::PackedRows,
    g: &mut lowp::PackedPanels,
    gallery: Matrix<'_>,
    block: BlockConfig,
    reducer: R,
) -> Result<R> {
    g.repack(gallery.as_slice(), gallery.dim());
    let g = &*g;
    let qb = block.query_block.max(1);
    let gb = block.gallery_block.max(1).next_multiple_of(lowp::NR);
    Ok(facebench_score::drive_tiles(q.rows, g.cols, qb, gb, reducer, |q0, rows, g0, cols, out| {
        lowp::score_tile(q, q0, rows, g, g0, cols, out)
    }))
}

/// Number of genuine scores strictly above `t` (`genuine` ascending).
fn genuine_above(genuine: &[f32], t: f32) -> usize {
    genuine.len() - genuine.partition_point(|&g| g <= t)
}

fn tar_exact(top: &[f32], genuine: &[f32], impostors: u64, far: f64) -> TarExact {
    let a = max_false_accepts(far, impostors);
    if a == 0 {
        return TarExact::NotMeasurable { impostors };
    }
    let ng = genuine.len() as f64;
    match top.get(a as usize) {
        Some(&t) => {
            let fa = top.partition_point(|&v| v > t);
            TarExact::Measured {
                tar: genuine_above(genuine, t) as f64 / ng,
                far: fa as f64 / impostors as f64,
                threshold: Some(t),
            }
        }
        // Fewer scoring impostors than the allowance: accept everything.
        None => TarExact::Measured { tar: 1.0, far: top.len() as f64 / impostors as f64, threshold: None },
    }
}

/// Grid of false-accept counts: 0..=9, then about 20 per decade.
fn fa_grid(max: u64) -> Vec<u64> {
    let mut g: Vec<u64> = (0..10.min(max + 1)).collect();
    let mut x = 10f64;
    while (x as u64) <= max {
        if g.last() != Some(&(x as u64)) {
            g.push(x as u64);
        }
        x *= 10f64.powf(1.0 / 20.0);
    }
    g
}

fn roc_curve(top: &[f32], hist: &[f64], sampled: bool, genuine: &[f32], impostors: u64) -> RocCurve {
    let ng = genuine.len() as f64;
    let ni = impostors as f64;
    let (mut fpr, mut tpr) = (Vec::new(), Vec::new());
    let mut last_fa = None;
    if !top.is_empty() {
        for c in fa_grid(top.len() as u64 - 1) {
            let t = top[c as usize];
            let fa = top.partition_point(|&v| v > t) as u64;
            if last_fa.is_some_and(|l| fa <= l) {
                continue;
            }
            last_fa = Some(fa);
            fpr.push(fa as f64 / ni);
            tpr.push(genuine_above(genuine, t) as f64 / ng);
        }
    }
    let exact_to_fpr = fpr.last().copied().unwrap_or(0.0);
    if !hist.is_empty() {
        let bins = hist.len();
        let mut gen_bins = vec![0u64; bins];
        for &g in genuine {
            gen_bins[bin_of(g, bins)] += 1;
        }
        let (mut fa, mut ta) = (0f64, 0u64);
        let mut last = last_fa.map_or(-1.0, |l| l as f64);
        let mut next = last + 1.0;
        for b in (1..bins).rev() {
            fa += hist[b];
            ta += gen_bins[b];
            if fa >= next && fa > last {
                fpr.push((fa / ni).min(1.0));
                tpr.push(ta as f64 / ng);
                last = fa;
                next = (fa * 10f64.powf(1.0 / 20.0)).ceil();
            }
        }
    }
    if fpr.last() != Some(&1.0) || tpr.last() != Some(&1.0) {
        fpr.push(1.0);
        tpr.push(1.0);
    }
    RocCurve { fpr, tpr, exact_to_fpr, sampled_beyond: sampled }
}

fn nearest_point(roc: &RocCurve, far: f64) -> Option<RocPoint> {
    let lf = far.log10();
    roc.fpr
        .iter()
        .zip(&roc.tpr)
        .filter(|(f, _)| **f > 0.0)
        .min_by(|a, b| (a.0.log10() - lf).abs().total_cmp(&(b.0.log10() - lf).abs()))
        .map(|(&fpr, &tpr)| RocPoint { fpr, tpr })
}

fn log_interp(roc: &RocCurve, far: f64) -> Option<f64> {
    let pts: Vec<(f64, f64)> = roc.fpr.iter().copied().zip(roc.tpr.iter().copied()).filter(|p| p.0 > 0.0).collect();
    let i = pts.windows(2).position(|w| w[0].0 <= far && far <= w[1].0)?;
    let ((f0, t0), (f1, t1)) = (pts[i], pts[i + 1]);
    if f1 == f0 {
        return Some(t0.max(t1));
    }
    Some(t0 + (t1 - t0) * (far.log10() - f0.log10()) / (f1.log10() - f0.log10()))
}
