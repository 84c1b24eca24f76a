//! Shared builders and brute-force references for the tests.
#![allow(dead_code)]

use facebench_core::rng::SplitMix64;
use facebench_core::Embeddings;
use facebench_megaface::*;
use facebench_score::dot;

/// 80 identities (3 to 9 images each), seeded clustered unit vectors.
pub fn probes(dim: usize, seed: u64) -> ProbeSet {
    let mut rng = SplitMix64::new(seed);
    let mut ids = Vec::new();
    let mut paths = Vec::new();
    let mut data = Vec::new();
    for id in 0..80 {
        let centre: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        let n = 3 + (rng.next_u64() % 7) as usize;
        for k in 0..n {
            ids.push(format!("Person_{id}"));
            paths.push(format!("Person_{id}/Person_{id}_{k}.png"));
            data.extend(centre.iter().map(|c| c + 0.7 * rng.normal() as f32));
        }
    }
    ProbeSet::new(&ids, paths, data, dim).unwrap()
}

/// `n` distractors: half near probe identities (so ranks vary), half elsewhere; keys `d<i>`.
pub fn distractor_store(p: &ProbeSet, n: usize, seed: u64) -> Embeddings {
    let mut rng = SplitMix64::new(seed);
    let d = p.dim();
    let mut data = Vec::new();
    for i in 0..n {
        if i % 2 == 0 {
            let src = p.row((rng.next_u64() % p.len() as u64) as usize);
            data.extend(src.iter().map(|c| c + 0.6 * rng.normal() as f32));
        } else {
            data.extend((0..d).map(|_| rng.normal() as f32));
        }
    }
    Embeddings::from_rows((0..n).map(|i| format!("d{i}")).collect(), data, d).unwrap()
}

/// Distinct seeded subsets of `0..n` of each size (not nested), as key lists.
pub fn subset_lists(n: usize, sizes: &[usize], seed: u64) -> Vec<(usize, Vec<String>)> {
    let mut rng = SplitMix64::new(seed);
    sizes
        .iter()
        .map(|&s| {
            let mut idx: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                idx.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
            (s, idx[..s].iter().map(|i| format!("d{i}")).collect())
        })
        .collect()
}

/// Unit-normalised copy of the store rows (what DistractorSet scores).
pub fn unit_rows(e: &Embeddings) -> Vec<Vec<f32>> {
    (0..e.len())
        .map(|i| {
            let mut r = e.row(i).to_vec();
            facebench_core::normalize_row(&mut r);
            r
        })
        .collect()
}

/// Brute force over full score matrices for one size: (CMC ranks 1..=r from
/// facebench-metrics' `megaface_cmc`, per-pair counts, genuine scores, impostor scores).
/// Noisy distractors get score -10 (they never rank, yet count as impostors).
pub struct Brute {
    pub cmc: Vec<f64>,
    pub counts: Vec<u64>,
    pub genuine: Vec<f64>,
    pub impostors: Vec<f64>,
}

pub fn brute(p: &ProbeSet, rows: &[Vec<f32>], members: &[usize], noisy: &[bool], r: usize) -> Brute {
    let n = p.len();
    let ids = p.identities();
    let mut pp = vec![0f64; n * n];
    for a in 0..n {
        for b in 0..n {
            pp[a * n + b] = dot(p.row(a), p.row(b)) as f64;
        }
    }
    let m = members.len();
    let mut pd = vec![0f64; n * m];
    for a in 0..n {
        for (j, &d) in members.iter().enumerate() {
            pd[a * m + j] = if noisy[d] { -10.0 } else { dot(p.row(a), &rows[d]) as f64 };
        }
    }
    let cmc = facebench_metrics::megaface_cmc(ids, &pp, &pd, r).unwrap();
    let counts = facebench_metrics::megaface_counts(ids, &pp, &pd).unwrap();
    let mut genuine = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            if ids[a] == ids[b] {
                genuine.push(pp[a * n + b]);
            }
        }
    }
    Brute { cmc, counts, genuine, impostors: pd }
}
