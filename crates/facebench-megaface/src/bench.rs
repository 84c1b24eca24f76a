//! The scale benchmark: a FaceScrub-shaped synthetic probe set and N synthetic distractors,
//! the full evaluation, and a bare GEMM of the same shape in the same run for comparison.

use std::time::Instant;

use facebench_score::{score_blocked, BlockConfig, Matrix, Reducer, Tile};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{DistractorSet, ProbeSet};
use crate::eval::{evaluate, EvalConfig, MegafaceResults, Scoring};
use crate::{Error, Result};
use facebench_core::rng::SplitMix64;

/// FaceScrub's shape in the devkit list: 80 identities, 3,530 images.
pub const FACESCRUB_IDENTITIES: usize = 80;
pub const FACESCRUB_IMAGES: usize = 3530;

/// A random direction: uniform coordinates in [-1, 1), normalised (a plain, fast generator;
/// the directions are not exactly uniform on the sphere, which the benchmark does not need).
fn random_row(rng: &mut SplitMix64, out: &mut [f32]) {
    for v in out.iter_mut() {
        *v = rng.uniform(-1.0, 1.0) as f32;
    }
    facebench_core::normalize_row(out);
}

/// `centre + spread * (random unit vector)`, normalised: a member of a cluster whose members
/// have cosine about `1 / (1 + spread^2)` with each other.
fn jitter(rng: &mut SplitMix64, centre: &[f32], spread: f32, out: &mut [f32]) {
    random_row(rng, out);
    for (v, c) in out.iter_mut().zip(centre) {
        *v = c + spread * *v;
    }
    facebench_core::normalize_row(out);
}

fn seeded(seed: u64, row: u64) -> SplitMix64 {
    let mut r = SplitMix64::new(seed ^ row.wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64();
    r
}

/// A synthetic probe set: `identities` clusters (images split as evenly as possible over
/// them), members at `spread` around a random centre, seeded.
pub fn synthetic_probes(identities: usize, images: usize, dim: usize, spread: f32, seed: u64) -> Result<ProbeSet> {
    if identities == 0 || images < identities || dim == 0 {
        return Err(Error::Invalid(format!("synthetic probes: {identities} identities, {images} images, dim {dim}")));
    }
    let mut centres = vec![0f32; identities * dim];
    let mut rng = seeded(seed, u64::MAX);
    for c in centres.chunks_mut(dim) {
        random_row(&mut rng, c);
    }
    let mut ids = Vec::with_capacity(images);
    let mut paths = Vec::with_capacity(images);
    let mut data = vec![0f32; images * dim];
    for (i, row) in data.chunks_mut(dim).enumerate() {
        let id = i * identities / images;
        jitter(&mut rng, &centres[id * dim..(id + 1) * dim], spread, row);
        ids.push(format!("id{id:03}"));
        paths.push(format!("id{id:03}/img{i:05}.png"));
    }
    ProbeSet::new(&ids, paths, data, dim)
}

/// `n` synthetic distractors in `clusters` seeded clusters (members at `spread` around each
/// centre), generated in parallel; size N is the first N rows.
pub fn synthetic_distractors(
    n: usize,
    dim: usize,
    clusters: usize,
    spread: f32,
    seed: u64,
    sizes: &[usize],
) -> Result<DistractorSet> {
    let clusters = clusters.max(1);
    let mut centres = vec![0f32; clusters * dim];
    let mut rng = seeded(seed, u64::MAX);
    for c in centres.chunks_mut(dim) {
        random_row(&mut rng, c);
    }
    let mut data = vec![0f32; n * dim];
    data.par_chunks_mut(dim).enumerate().for_each(|(i, row)| {
        let mut rng = seeded(seed, i as u64);
        let c = (rng.next_u64() % clusters as u64) as usize;
        jitter(&mut rng, &centres[c * dim..(c + 1) * dim], spread, row);
    });
    DistractorSet::from_raw_first_n(data, dim, sizes)
}

/// The devkit sizes up to `n`, and `n` itself.
pub fn sizes_up_to(n: usize) -> Vec<usize> {
    let mut s: Vec<usize> = [10, 100, 1000, 10_000, 100_000, 1_000_000].into_iter().filter(|&s| s < n).collect();
    s.push(n);
    s
}

/// Measurements of one benchmark run (all on synthetic data, labelled so).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub label: String,
    pub probes: usize,
    pub distractors: usize,
    pub dim: usize,
    pub threads: usize,
    /// 2 x probes x distractors x dim.
    pub gflop: f64,
    pub generate_s: f64,
    pub eval_s: f64,
    pub bare_gemm_s: f64,
    /// Process CPU seconds (user + system) of each, less sensitive than wall time to other
    /// jobs on a shared machine.
    pub eval_cpu_s: f64,
    pub bare_gemm_cpu_s: f64,
    /// `eval_s / bare_gemm_s` (target <= 1.25).
    pub ratio: f64,
    pub eval_gflops: f64,
    pub gemm_gflops: f64,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Bytes of the distractor matrix, MiB.
    pub distractor_mib: f64,
    pub results: MegafaceResults,
    /// The same evaluation in the bf16 and int8 modes, those this CPU can run.
    pub modes: Vec<ModeBench>,
}

/// An approximate scoring mode against the f32 evaluation of the same run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeBench {
    pub scoring: Scoring,
    pub eval_s: f64,
    pub eval_cpu_s: f64,
    /// f32 evaluation time / this mode's evaluation time (target >= 1.7), wall and CPU.
    pub speedup: f64,
    pub speedup_cpu: f64,
    /// Largest |rank-1 (mode) - rank-1 (f32)| over the sizes (target < 0.0005, i.e. equal
    /// to 3 decimals).
    pub max_rank1_diff: f64,
    pub results: MegafaceResults,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} probes x {} distractors x {} dims on {} threads ({:.0} GFLOP)",
            self.label, self.probes, self.distractors, self.dim, self.threads, self.gflop
        )?;
        writeln!(f, "  generate   {:8.2} s", self.generate_s)?;
        writeln!(
            f,
            "  evaluation {:8.2} s  {:7.1} GFLOP/s  ({:.2} CPU s)",
            self.eval_s, self.eval_gflops, self.eval_cpu_s
        )?;
        writeln!(
            f,
            "  bare GEMM  {:8.2} s  {:7.1} GFLOP/s  ({:.2} CPU s)",
            self.bare_gemm_s, self.gemm_gflops, self.bare_gemm_cpu_s
        )?;
        writeln!(
            f,
            "  ratio      {:8.3} wall, {:.3} CPU (evaluation / bare GEMM, target <= 1.25)",
            self.ratio,
            self.eval_cpu_s / self.bare_gemm_cpu_s
        )?;
        writeln!(
            f,
            "  peak RSS   {:8.0} MiB (distractors {:.0} MiB + {:.0} MiB)",
            self.peak_rss_mib,
            self.distractor_mib,
            self.peak_rss_mib - self.distractor_mib
        )?;
        write!(f, "{}", self.results.summary())?;
        for b in &self.modes {
            writeln!(
                f,
                "  {} mode  {:8.2} s  ({:.2} CPU s): {:.2}x faster wall, {:.2}x CPU than f32 (target >= 1.7); \
                 max |rank-1 diff| {:.5}, rank-1 {} to 3 decimals",
                b.scoring.name(),
                b.eval_s,
                b.eval_cpu_s,
                b.speedup,
                b.speedup_cpu,
                b.max_rank1_diff,
                if b.max_rank1_diff < 0.0005 { "equal" } else { "NOT equal" }
            )?;
            write!(f, "{}", b.results.summary())?;
        }
        Ok(())
    }
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`; 0 where unavailable).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) this process has used so far (Linux; 0 elsewhere).
pub fn cpu_seconds() -> f64 {
    // /proc/self/stat: fields 14 and 15 (utime, stime) in clock ticks of 1/100 s, counted
    // after the parenthesised command name, which may contain spaces.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// Discards every tile: blocked scoring with this reducer is the bare GEMM.
struct Discard;
impl Reducer for Discard {
    fn fork(&self) -> Self {
        Discard
    }
    fn consume(&mut self, tile: &Tile<'_>) {
        std::hint::black_box(tile.row(0).first());
    }
    fn merge(&mut self, _other: Self) {}
}

/// Times blocked scoring of `probes x distractors` with no reduction (the GEMM floor).
pub fn bare_gemm_seconds(probes: &ProbeSet, distractors: &DistractorSet, block: BlockConfig) -> Result<f64> {
    let q = Matrix::new(probes.data(), probes.len(), probes.dim())?;
    let g = Matrix::new(distractors.data(), distractors.rows(), distractors.dim())?;
    let t = Instant::now();
    score_blocked(q, g, block, Discard)?;
    Ok(t.elapsed().as_secs_f64())
}

/// Runs the scale benchmark on a rayon pool of `threads` threads (0: rayon's default):
/// a FaceScrub-shaped synthetic probe set (80 identities, 3,530 images), `distractors`
/// clustered synthetic distractors of dimension `dim` (seeded), the full evaluation at the
/// devkit sizes up to `distractors`, and a bare GEMM of the same shape.
pub fn bench_megaface(distractors: usize, dim: usize, threads: usize) -> Result<BenchReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot build a {threads}-thread pool: {e}")))?;
    pool.install(|| {
        let t = Instant::now();
        let probes = synthetic_probes(FACESCRUB_IDENTITIES, FACESCRUB_IMAGES, dim, 2.0, 7)?;
        let dset = synthetic_distractors(distractors, dim, 1000, 1.0, 11, &sizes_up_to(distractors))?;
        let generate_s = t.elapsed().as_secs_f64();
        let cfg = EvalConfig { dataset: "synthetic".into(), ..EvalConfig::default() };
        let (t, c) = (Instant::now(), cpu_seconds());
        let results = evaluate(&probes, &dset, &cfg, &|_, _| {})?;
        let (eval_s, eval_cpu_s) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        let c = cpu_seconds();
        let bare_gemm_s = bare_gemm_seconds(&probes, &dset, cfg.block)?;
        let bare_gemm_cpu_s = cpu_seconds() - c;
        let mut modes = Vec::new();
        for scoring in [Scoring::Bf16, Scoring::Int8] {
            if !scoring.format().is_some_and(|f| f.available()) {
                continue;
            }
            let c = EvalConfig { scoring, ..cfg.clone() };
            let (t, cpu) = (Instant::now(), cpu_seconds());
            let r = evaluate(&probes, &dset, &c, &|_, _| {})?;
            let (s, cs) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
            modes.push(ModeBench {
                scoring,
                eval_s: s,
                eval_cpu_s: cs,
                speedup: eval_s / s,
                speedup_cpu: eval_cpu_s / cs,
                max_rank1_diff: r
                    .sizes
                    .iter()
                    .zip(&results.sizes)
                    .map(|(a, b)| (a.rank1 - b.rank1).abs())
                    .fold(0.0, f64::max),
                results: r,
            });
        }
        let gflop = 2.0 * probes.len() as f64 * distractors as f64 * dim as f64 / 1e9;
        Ok(BenchReport {
            label: "synthetic (not MegaFace)".into(),
            probes: probes.len(),
            distractors,
            dim,
            threads: rayon::current_num_threads(),
            gflop,
            generate_s,
            eval_s,
            bare_gemm_s,
            eval_cpu_s,
            bare_gemm_cpu_s,
            ratio: eval_s / bare_gemm_s,
            eval_gflops: gflop / eval_s,
            gemm_gflops: gflop / bare_gemm_s,
            peak_rss_mib: peak_rss_mib(),
            distractor_mib: (distractors * dim * 4) as f64 / (1024.0 * 1024.0),
            results,
            modes,
        })
    })
}
