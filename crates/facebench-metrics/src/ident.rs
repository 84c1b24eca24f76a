//! Identification: CMC from per-query counts, and the MegaFace rule by brute force.

use crate::{check_finite, MetricsError};

/// CMC (rates for ranks `1..=max_rank`) from, per query, the number of distractor scores
/// strictly greater than the mate score: success at rank `r` iff `count < r` (ties count
/// for the query).
pub fn cmc_from_counts(counts_greater: &[u64], max_rank: usize) -> Result<Vec<f64>, MetricsError> {
    if counts_greater.is_empty() {
        return Err(MetricsError::Empty);
    }
    if max_rank == 0 {
        return Err(MetricsError::Invalid("max_rank must be at least 1".into()));
    }
    // hist[c] = queries with count c, for c < max_rank; larger counts never succeed.
    let mut hist = vec![0u64; max_rank];
    for &c in counts_greater {
        if let Some(h) = usize::try_from(c).ok().and_then(|c| hist.get_mut(c)) {
            *h += 1;
        }
    }
    let n = counts_greater.len() as f64;
    let mut acc = 0u64;
    Ok(hist
        .iter()
        .map(|&h| {
            acc += h;
            acc as f64 / n
        })
        .collect())
}

/// A CMC curve as the MegaFace devkit writes it: 0-based ranks where the rate changes (rank 0
/// first, the last rank = number of distractors with rate 1), and the rates there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CmcCurve {
    pub ranks: Vec<u64>,
    pub rates: Vec<f64>,
}

/// The whole CMC curve (every rank up to `distractors`) from the same per-query counts as
/// [`cmc_from_counts`]: the rate at 0-based rank `r` is the share of queries with count <= r.
pub fn cmc_curve_from_counts(counts_greater: &[u64], distractors: u64) -> Result<CmcCurve, MetricsError> {
    if counts_greater.is_empty() {
        return Err(MetricsError::Empty);
    }
    let mut c = counts_greater.to_vec();
    c.sort_unstable();
    let n = c.len() as f64;
    let (mut ranks, mut rates) = (Vec::new(), Vec::new());
    if c[0] > 0 {
        ranks.push(0);
        rates.push(0.0);
    }
    let mut i = 0;
    while i < c.len() {
        let v = c[i];
        while i < c.len() && c[i] == v {
            i += 1;
        }
        ranks.push(v);
        rates.push(i as f64 / n);
    }
    if ranks.last().is_some_and(|&r| r < distractors) {
        ranks.push(distractors);
        rates.push(1.0);
    }
    Ok(CmcCurve { ranks, rates })
}

/// Checks shapes and returns the number of distractors per probe row.
fn check_megaface(probe_ids: &[usize], probe_scores: &[f64], distractor_scores: &[f64]) -> Result<usize, MetricsError> {
    let n = probe_ids.len();
    if n == 0 {
        return Err(MetricsError::Empty);
    }
    // n * n cannot overflow when it equals a slice length; checked for the error path.
    if n.checked_mul(n) != Some(probe_scores.len()) {
        return Err(MetricsError::LengthMismatch {
            what: "probe x probe scores",
            got: probe_scores.len(),
            expected: n.saturating_mul(n),
        });
    }
    if !distractor_scores.len().is_multiple_of(n) {
        return Err(MetricsError::Invalid(format!(
            "probe x distractor scores: {} values is not a whole number of rows of {n} probes",
            distractor_scores.len()
        )));
    }
    check_finite(probe_scores, " in the probe x probe matrix")?;
    check_finite(distractor_scores, " in the probe x distractor matrix")?;
    Ok(distractor_scores.len() / n)
}

/// The ordered (query p, gallery image g) pairs of the MegaFace rule: same identity, p != g.
fn mate_pairs(probe_ids: &[usize]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let n = probe_ids.len();
    (0..n).flat_map(move |p| (0..n).filter(move |&g| g != p && probe_ids[g] == probe_ids[p]).map(move |g| (p, g)))
}

/// Per ordered (query p, gallery g) pair of the MegaFace rule, in `(p, g)` order: the number
/// of distractors scoring strictly above `score(p, g)`. Feed to [`cmc_from_counts`].
/// `probe_scores` is `n x n` row-major (row = query), `distractor_scores` `n x m`.
pub fn megaface_counts(
    probe_ids: &[usize],
    probe_scores: &[f64],
    distractor_scores: &[f64],
) -> Result<Vec<u64>, MetricsError> {
    let m = check_megaface(probe_ids, probe_scores, distractor_scores)?;
    let n = probe_ids.len();
    let mut sorted_rows: Vec<Option<Vec<f64>>> = vec![None; n];
    let mut out = Vec::new();
    for (p, g) in mate_pairs(probe_ids) {
        let row = sorted_rows[p].get_or_insert_with(|| {
            let mut r = distractor_scores[p * m..(p + 1) * m].to_vec();
            r.sort_by(f64::total_cmp);
            r
        });
        let mate = probe_scores[p * n + g];
        out.push((m - row.partition_point(|&s| s <= mate)) as u64);
    }
    if out.is_empty() {
        return Err(MetricsError::Invalid("no identity has two probe images: no (query, gallery) pairs".into()));
    }
    Ok(out)
}

/// Brute-force MegaFace CMC (PROTOCOLS.md): for each identity and each of its images g, put g
/// in the gallery with all distractors; every other image p of the identity is a query;
/// success at rank r iff `score(p, g)` is at least the r-th largest `score(p, distractor)`
/// (automatically when there are fewer than r distractors). Rate = successes / ordered pairs.
/// Quadratic and meant for cross-checking the streamed implementation.
pub fn megaface_cmc(
    probe_ids: &[usize],
    probe_scores: &[f64],
    distractor_scores: &[f64],
    max_rank: usize,
) -> Result<Vec<f64>, MetricsError> {
    let m = check_megaface(probe_ids, probe_scores, distractor_scores)?;
    if max_rank == 0 {
        return Err(MetricsError::Invalid("max_rank must be at least 1".into()));
    }
    let n = probe_ids.len();
    let mut success = vec![0u64; max_rank];
    let mut pairs = 0u64;
    for (p, g) in mate_pairs(probe_ids) {
        let mut row = distractor_scores[p * m..(p + 1) * m].to_vec();
        row.sort_by(|a, b| b.total_cmp(a));
        let mate = probe_scores[p * n + g];
        for (r, s) in success.iter_mut().enumerate() {
            if r >= m || mate >= row[r] {
                *s += 1;
            }
        }
        pairs += 1;
    }
    if pairs == 0 {
        return Err(MetricsError::Invalid("no identity has two probe images: no (query, gallery) pairs".into()));
    }
    Ok(success.iter().map(|&s| s as f64 / pairs as f64).collect())
}
