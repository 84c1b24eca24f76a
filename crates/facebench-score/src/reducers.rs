//! The standard reducers: per-query top-k, per-query counts above given scores, global top-k
//! and a score histogram. All merge exactly, so results do not depend on threads or tiling.
//!
//! Score order: scores are compared with `f32::total_cmp` (matrices reject NaN and infinities,
//! so this is the usual order except that -0.0 ranks below +0.0); equal scores are broken by
//! the smaller gallery index (per query) or the smaller (query, gallery) pair (global).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::blocked::{Reducer, Tile};
use crate::matrix::ScoreError;

/// A gallery item and its score for one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub gallery: usize,
    pub score: f32,
}

/// A (query, gallery) pair and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairHit {
    pub query: usize,
    pub gallery: usize,
    pub score: f32,
}

/// Heap entry ordered so that the *worst* entry is the greatest (root of a max-heap).
#[derive(Debug, Clone, Copy)]
struct Worst {
    score: f32,
    key: (usize, usize),
}

impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then(self.key.cmp(&other.key))
    }
}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}

/// A bounded best-k set: a max-heap of the worst kept entry plus a fast rejection bound.
#[derive(Debug, Clone)]
struct BestK {
    k: usize,
    heap: BinaryHeap<Worst>,
    /// Scores strictly below this cannot enter (the worst kept score once full).
    bound: f32,
}

impl BestK {
    fn new(k: usize) -> Self {
        BestK { k, heap: BinaryHeap::new(), bound: f32::NEG_INFINITY }
    }

    #[inline]
    fn offer(&mut self, e: Worst) {
        if self.heap.len() < self.k {
            self.heap.push(e);
        } else if let Some(mut top) = self.heap.peek_mut() {
            if e < *top {
                *top = e;
            } else {
                return;
            }
        } else {
            return; // k == 0
        }
        if self.heap.len() == self.k {
            self.bound = self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.score);
        }
    }

    fn merge(&mut self, other: BestK) {
        for e in other.heap {
            self.offer(e);
        }
    }

    fn into_sorted(self) -> Vec<Worst> {
        self.heap.into_sorted_vec() // ascending in `Worst` order = best first
    }
}

/// Scan width of the fast rejection tests: one AVX-512 register of f32.
const LANES: usize = 16;

/// Largest value of a 16-lane chunk, written so that it compiles to vector max instructions.
#[inline(always)]
fn chunk_max(c: &[f32; LANES]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 4];
    for i in 0..LANES / 4 {
        for l in 0..4 {
            let v = c[i * 4 + l];
            m[l] = if v > m[l] { v } else { m[l] };
        }
    }
    let a = if m[0] > m[1] { m[0] } else { m[1] };
    let b = if m[2] > m[3] { m[2] } else { m[3] };
    if a > b {
        a
    } else {
        b
    }
}

/// Calls `visit(state, j, s)` for every score `s` of `row` (column `j`) with `s >= bound()`, skipping
/// whole 16-score chunks below the bound with one vector test (almost every chunk, once a
/// top-k is full or when a threshold is high). `bound(state)` is re-read after each visit
/// since `visit` may raise it.
#[inline(always)]
fn scan_row<S: ?Sized>(
    row: &[f32],
    excluded: Option<&[bool]>,
    state: &mut S,
    bound: impl Fn(&S) -> f32,
    mut visit: impl FnMut(&mut S, usize, f32),
) {
    let mut chunks = row.chunks_exact(LANES);
    let mut j0 = 0;
    for chunk in &mut chunks {
        let c: &[f32; LANES] = chunk.try_into().expect("chunks_exact yields full chunks");
        if chunk_max(c) >= bound(state) {
            for (l, &s) in c.iter().enumerate() {
                if s >= bound(state) && !excluded.is_some_and(|e| e[j0 + l]) {
                    visit(state, j0 + l, s);
                }
            }
        }
        j0 += LANES;
    }
    for (l, &s) in chunks.remainder().iter().enumerate() {
        if s >= bound(state) && !excluded.is_some_and(|e| e[j0 + l]) {
            visit(state, j0 + l, s);
        }
    }
}

/// Offers the scores of one tile row to `best`.
#[inline]
fn offer_row(best: &mut BestK, row: &[f32], excluded: Option<&[bool]>, key: impl Fn(usize) -> (usize, usize)) {
    scan_row(row, excluded, best, |b| b.bound, |b, j, s| b.offer(Worst { score: s, key: key(j) }));
}

/// Per query, the `k` best gallery items (score descending, ties: smaller gallery index).
#[derive(Debug, Clone)]
pub struct TopKPerQuery {
    queries: usize,
    best: Vec<BestK>,
}

impl TopKPerQuery {
    /// Keeps the best `k` gallery items of each of `queries` queries.
    pub fn new(queries: usize, k: usize) -> Self {
        TopKPerQuery { queries, best: vec![BestK::new(k); queries] }
    }

    /// For each query, its hits best first (fewer than k if the gallery is smaller).
    pub fn into_hits(self) -> Vec<Vec<Hit>> {
        self.best
            .into_iter()
            .map(|b| b.into_sorted().into_iter().map(|w| Hit { gallery: w.key.1, score: w.score }).collect())
            .collect()
    }
}

impl Reducer for TopKPerQuery {
    fn fork(&self) -> Self {
        TopKPerQuery::new(self.queries, self.best.first().map_or(0, |b| b.k))
    }
    fn consume(&mut self, tile: &Tile<'_>) {
        let g0 = tile.g0();
        for i in 0..tile.rows() {
            offer_row(&mut self.best[tile.q0() + i], tile.row(i), tile.excluded(), |j| (0, g0 + j));
        }
    }
    fn merge(&mut self, other: Self) {
        for (a, b) in self.best.iter_mut().zip(other.best) {
            a.merge(b);
        }
    }
    fn check(&self, queries: usize, _gallery: usize) -> Result<(), ScoreError> {
        shape_check("TopKPerQuery", self.queries, queries)
    }
}

fn shape_check(what: &str, built_for: usize, queries: usize) -> Result<(), ScoreError> {
    if built_for == queries {
        Ok(())
    } else {
        Err(ScoreError::ReducerShape(format!(
            "{what} was built for {built_for} queries, the query matrix has {queries}"
        )))
    }
}

/// The `k` best scores over all (query, gallery) pairs (ties: smaller (query, gallery) first),
/// e.g. the highest impostor scores that fix a threshold at FAR = 1e-6.
#[derive(Debug, Clone)]
pub struct GlobalTopK {
    best: BestK,
}

impl GlobalTopK {
    /// Keeps the best `k` pairs.
    pub fn new(k: usize) -> Self {
        GlobalTopK { best: BestK::new(k) }
    }
    /// The kept pairs, best first.
    pub fn into_hits(self) -> Vec<PairHit> {
        self.best
            .into_sorted()
            .into_iter()
            .map(|w| PairHit { query: w.key.0, gallery: w.key.1, score: w.score })
            .collect()
    }
}

impl Reducer for GlobalTopK {
    fn fork(&self) -> Self {
        GlobalTopK::new(self.best.k)
    }
    fn consume(&mut self, tile: &Tile<'_>) {
        let g0 = tile.g0();
        for i in 0..tile.rows() {
            let q = tile.q0() + i;
            offer_row(&mut self.best, tile.row(i), tile.excluded(), |j| (q, g0 + j));
        }
    }
    fn merge(&mut self, other: Self) {
        self.best.merge(other.best);
    }
}

/// Per query, for each of its given reference scores `t`, the number of gallery scores
/// strictly greater than `t`. MegaFace rank of a mate score `t` = 1 + that count.
#[derive(Debug, Clone)]
pub struct CountAbove {
    plan: Arc<CountPlan>,
    /// Per query q, `plan.offsets[q] + q ..= plan.offsets[q + 1] + q`: slot p counts the
    /// scores that exceed exactly the p smallest thresholds of q.
    slots: Vec<u64>,
}

#[derive(Debug)]
struct CountPlan {
    offsets: Vec<usize>,
    /// Thresholds of each query, sorted ascending.
    sorted: Vec<f32>,
    /// `order[offsets[q] + r]` = position (in the caller's list) of the r-th smallest threshold.
    order: Vec<usize>,
}

impl CountAbove {
    /// Thresholds in compressed rows: query `q` owns `thresholds[offsets[q]..offsets[q + 1]]`.
    /// `offsets` has one entry per query plus one, starts at 0, never decreases and ends at
    /// `thresholds.len()`; thresholds must be finite.
    pub fn new(offsets: &[usize], thresholds: &[f32]) -> Result<Self, ScoreError> {
        if offsets.first() != Some(&0) || offsets.last() != Some(&thresholds.len()) {
            return Err(ScoreError::Config(format!(
                "CountAbove offsets must start at 0 and end at the number of thresholds ({})",
                thresholds.len()
            )));
        }
        if let Some(q) = offsets.windows(2).position(|w| w[0] > w[1]) {
            return Err(ScoreError::Config(format!("CountAbove offsets decrease at query {q}")));
        }
        if let Some(i) = thresholds.iter().position(|t| !t.is_finite()) {
            return Err(ScoreError::Config(format!("CountAbove threshold {i} is not finite ({})", thresholds[i])));
        }
        let mut order: Vec<usize> = (0..thresholds.len()).collect();
        for w in offsets.windows(2) {
            order[w[0]..w[1]].sort_by(|&a, &b| thresholds[a].total_cmp(&thresholds[b]));
        }
        let sorted = order.iter().map(|&i| thresholds[i]).collect();
        let queries = offsets.len() - 1;
        let plan = CountPlan { offsets: offsets.to_vec(), sorted, order };
        Ok(CountAbove { slots: vec![0; thresholds.len() + queries], plan: Arc::new(plan) })
    }

    /// One threshold per query.
    pub fn single(thresholds: &[f32]) -> Result<Self, ScoreError> {
        let offsets: Vec<usize> = (0..=thresholds.len()).collect();
        Self::new(&offsets, thresholds)
    }

    /// Counts aligned with the `thresholds` given to [`CountAbove::new`].
    pub fn counts(&self) -> Vec<u64> {
        let p = &*self.plan;
        let mut out = vec![0u64; p.sorted.len()];
        for q in 0..p.offsets.len() - 1 {
            let (a, b) = (p.offsets[q], p.offsets[q + 1]);
            let slots = &self.slots[a + q..=b + q];
            // count(r-th smallest) = number of scores exceeding more than r thresholds.
            let mut above = 0u64;
            for r in (0..b - a).rev() {
                above += slots[r + 1];
                out[p.order[a + r]] = above;
            }
        }
        out
    }
}

impl Reducer for CountAbove {
    fn fork(&self) -> Self {
        CountAbove { plan: Arc::clone(&self.plan), slots: vec![0; self.slots.len()] }
    }
    fn consume(&mut self, tile: &Tile<'_>) {
        let p = &*self.plan;
        for i in 0..tile.rows() {
            let q = tile.q0() + i;
            let (a, b) = (p.offsets[q], p.offsets[q + 1]);
            if a == b {
                continue;
            }
            let ts = &p.sorted[a..b];
            let slots = &mut self.slots[a + q..=b + q];
            // Scores <= the smallest threshold count for nothing; `next_up` turns the scan's
            // `>=` test into `>` (thresholds are finite, so next_up is exact).
            let bound = ts[0].next_up();
            scan_row(
                tile.row(i),
                tile.excluded(),
                slots,
                |_| bound,
                |slots, _, s| slots[ts.partition_point(|&t| t < s)] += 1,
            );
        }
    }
    fn merge(&mut self, other: Self) {
        for (a, b) in self.slots.iter_mut().zip(other.slots) {
            *a += b;
        }
    }
    fn check(&self, queries: usize, _gallery: usize) -> Result<(), ScoreError> {
        shape_check("CountAbove", self.plan.offsets.len() - 1, queries)
    }
}

/// Counts of scores in `bins` equal-width bins over `[lo, hi]`; scores outside clamp to the
/// end bins. The bin of `s` is `floor((s - lo) * bins / (hi - lo))` computed in f64, so it is
/// a pure function of the score.
#[derive(Debug, Clone)]
pub struct Histogram {
    lo: f64,
    hi: f64,
    scale: f64,
    bins: usize,
    /// `HIST_LANES` interleaved copies of the counts (`lanes[l * bins + b]`): consecutive scores
    /// usually fall in the same bin, and spreading them over copies breaks the chain of
    /// increments to one memory word. Summed by `counts`.
    lanes: Vec<u64>,
}

const HIST_LANES: usize = 4;

impl Histogram {
    /// `bins >= 1` bins over `[lo, hi]`, `lo < hi` finite.
    pub fn new(lo: f64, hi: f64, bins: usize) -> Result<Self, ScoreError> {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) || bins == 0 {
            return Err(ScoreError::Config(format!(
                "histogram needs finite lo < hi and at least one bin (lo {lo}, hi {hi}, bins {bins})"
            )));
        }
        Ok(Histogram { lo, hi, scale: bins as f64 / (hi - lo), bins, lanes: vec![0; bins * HIST_LANES] })
    }
    /// The `(lo, hi)` range the bins cover.
    pub fn range(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }
    /// Bin counts, lowest bin first.
    pub fn counts(&self) -> Vec<u64> {
        (0..self.bins).map(|b| (0..HIST_LANES).map(|l| self.lanes[l * self.bins + b]).sum()).collect()
    }
    /// The bin that `score` falls into.
    #[inline]
    pub fn bin_of(&self, score: f32) -> usize {
        // max(0) also maps NaN to 0; after clamping, truncation is the floor.
        let x = ((score as f64 - self.lo) * self.scale).max(0.0).min((self.bins - 1) as f64);
        // SAFETY: x is finite and in [0, bins - 1], so it fits in usize.
        unsafe { x.to_int_unchecked::<usize>() }
    }
    /// Total number of counted scores.
    pub fn total(&self) -> u64 {
        self.lanes.iter().sum()
    }
}

impl Reducer for Histogram {
    fn fork(&self) -> Self {
        Histogram { lanes: vec![0; self.lanes.len()], ..*self }
    }
    fn consume(&mut self, tile: &Tile<'_>) {
        let bins = self.bins;
        for i in 0..tile.rows() {
            let row = tile.row(i);
            match tile.excluded() {
                None => {
                    let mut chunks = row.chunks_exact(HIST_LANES);
                    for c in &mut chunks {
                        let b: [usize; HIST_LANES] = std::array::from_fn(|l| self.bin_of(c[l]));
                        for (l, &b) in b.iter().enumerate() {
                            self.lanes[l * bins + b] += 1;
                        }
                    }
                    for &s in chunks.remainder() {
                        let b = self.bin_of(s);
                        self.lanes[b] += 1;
                    }
                }
                Some(e) => {
                    for (&s, _) in row.iter().zip(e).filter(|(_, &x)| !x) {
                        let b = self.bin_of(s);
                        self.lanes[b] += 1;
                    }
                }
            }
        }
    }
    fn merge(&mut self, other: Self) {
        for (a, b) in self.lanes.iter_mut().zip(other.lanes) {
            *a += b;
        }
    }
}
