//! The per-size streaming reducer: one scan of each score tile serves every distractor size.
//!
//! For each probe `p` it counts, per size, the distractor scores strictly greater than each
//! mate score `score(p, g)` (the MegaFace rank of `g` for query `p` is 1 + that count); per
//! size it keeps the largest impostor scores (enough for the smallest FAR asked) and,
//! optionally, a histogram of all impostor scores for the rest of the ROC. All of it merges
//! exactly (integer counts, a multiset of top values), so results do not depend on thread
//! counts, block sizes or tile order.

use facebench_score::{Reducer, Tile};

/// What the reducer needs to know, shared by all its partials.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Per gallery row, the sizes it scores in (bit set; noisy rows 0).
    pub member: Vec<u8>,
    pub sizes: usize,
    /// Probe `q` owns `sorted[offsets[q]..offsets[q + 1]]`: its mate scores, ascending.
    pub offsets: Vec<usize>,
    pub sorted: Vec<f32>,
    /// `order[offsets[q] + r]` = mate-pair index of the r-th smallest mate score of `q`.
    pub order: Vec<usize>,
    /// Per size, how many top impostor scores to keep.
    pub keep: Vec<usize>,
    /// Histogram bins over [-1, 1] (0: no histogram).
    pub bins: usize,
}

impl Plan {
    /// Slots per size: one more per probe than it has mates.
    fn slots(&self) -> usize {
        self.sorted.len() + self.offsets.len() - 1
    }
    /// The histogram bin of a score: `floor((s + 1) * bins / 2)` in f64, clamped.
    #[inline]
    pub fn bin(&self, s: f32) -> usize {
        bin_of(s, self.bins)
    }
}

#[inline]
pub(crate) fn bin_of(s: f32, bins: usize) -> usize {
    let x = (s as f64 + 1.0) * (bins as f64 * 0.5);
    if x <= 0.0 {
        0
    } else {
        (x as usize).min(bins - 1)
    }
}

/// The best scores seen, as a multiset of values: a buffer that is cut back to the `keep`
/// largest whenever it reaches twice that, with a bound below which nothing can enter.
#[derive(Debug, Clone)]
pub(crate) struct TopScores {
    keep: usize,
    buf: Vec<f32>,
    /// Scores `<= bound` cannot change the `keep` largest values.
    bound: f32,
}

impl TopScores {
    pub fn new(keep: usize, bound: f32) -> Self {
        TopScores { keep, buf: Vec::new(), bound }
    }
    #[inline]
    fn offer(&mut self, s: f32) {
        if s > self.bound {
            self.buf.push(s);
            if self.buf.len() >= 2 * self.keep.max(1) {
                self.cut();
            }
        }
    }
    fn cut(&mut self) {
        if self.buf.len() > self.keep {
            let k = self.keep;
            self.buf.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            self.buf.truncate(k);
            self.bound = self.buf.iter().copied().fold(f32::INFINITY, f32::min);
        }
    }
    fn merge(&mut self, other: TopScores) {
        for s in other.buf {
            self.offer(s);
        }
    }
    /// The kept values, largest first (at most `keep`).
    pub fn into_sorted(mut self) -> Vec<f32> {
        self.cut();
        self.buf.sort_unstable_by(|a, b| b.total_cmp(a));
        self.buf
    }
    /// A bound that is safe to hand to a fresh partial: once `keep` values are held, nothing
    /// at or below their minimum can enter the final top set.
    fn seed_bound(&self) -> f32 {
        if self.buf.len() >= self.keep {
            let mut v = self.buf.clone();
            v.select_nth_unstable_by(self.keep - 1, |a, b| b.total_cmp(a));
            v[self.keep - 1].max(self.bound)
        } else {
            self.bound
        }
    }
}

/// Partial state of one pass (see the module docs). `col0` is the absolute gallery row of
/// the first column of the gallery slice being scored.
#[derive(Debug, Clone)]
pub(crate) struct SizeReducer<'a> {
    plan: &'a Plan,
    col0: usize,
    /// `[size][slot]`: slot `p` of probe `q` (at `offsets[q] + q + p`) counts the scores
    /// that exceed exactly the `p` smallest mate scores of `q`.
    slots: Vec<u32>,
    pub top: Vec<TopScores>,
    /// `[size][bin]`.
    pub hist: Vec<u64>,
}

impl<'a> SizeReducer<'a> {
    pub fn new(plan: &'a Plan) -> Self {
        let top = plan.keep.iter().map(|&k| TopScores::new(k, f32::NEG_INFINITY)).collect();
        Self::with_top(plan, 0, top)
    }

    fn with_top(plan: &'a Plan, col0: usize, top: Vec<TopScores>) -> Self {
        SizeReducer { plan, col0, slots: vec![0; plan.sizes * plan.slots()], top, hist: vec![0; plan.sizes * plan.bins] }
    }

    /// An empty partial for the gallery slice starting at row `col0`, whose top-score
    /// buffers start from this state's bounds (so partials keep little once warmed up).
    pub fn fork_at(&self, col0: usize) -> Self {
        let top = self.top.iter().map(|t| TopScores::new(t.keep, t.seed_bound())).collect();
        Self::with_top(self.plan, col0, top)
    }

    /// Per size, per mate pair: the number of scoring distractors strictly above the mate score.
    pub fn counts(&self) -> Vec<Vec<u64>> {
        let p = self.plan;
        let per = p.slots();
        (0..p.sizes)
            .map(|b| {
                let slots = &self.slots[b * per..(b + 1) * per];
                let mut out = vec![0u64; p.sorted.len()];
                for q in 0..p.offsets.len() - 1 {
                    let (a, e) = (p.offsets[q], p.offsets[q + 1]);
                    let s = &slots[a + q..=e + q];
                    let mut above = 0u64;
                    for r in (0..e - a).rev() {
                        above += s[r + 1] as u64;
                        out[p.order[a + r]] = above;
                    }
                }
                out
            })
            .collect()
    }
}

impl Reducer for SizeReducer<'_> {
    fn fork(&self) -> Self {
        self.fork_at(self.col0)
    }

    fn consume(&mut self, tile: &Tile<'_>) {
        let p = self.plan;
        let per = p.slots();
        let g0 = self.col0 + tile.g0();
        let member = &p.member[g0..g0 + tile.cols()];
        let excluded = tile.excluded();
        for i in 0..tile.rows() {
            let q = tile.q0() + i;
            let (a, e) = (p.offsets[q], p.offsets[q + 1]);
            let ts = &p.sorted[a..e];
            let min = ts.first().copied().unwrap_or(f32::INFINITY);
            let base = a + q;
            for (j, (&s, &m)) in tile.row(i).iter().zip(member).enumerate() {
                if m == 0 || excluded.is_some_and(|x| x[j]) {
                    continue;
                }
                let slot = if s > min { ts.partition_point(|&t| t < s) } else { 0 };
                let bin = if p.bins > 0 { p.bin(s) } else { 0 };
                let mut bits = m;
                while bits != 0 {
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if slot > 0 {
                        self.slots[b * per + base + slot] += 1;
                    }
                    self.top[b].offer(s);
                    if p.bins > 0 {
                        self.hist[b * p.bins + bin] += 1;
                    }
                }
            }
        }
    }

    fn merge(&mut self, other: Self) {
        for (a, b) in self.slots.iter_mut().zip(&other.slots) {
            *a += b;
        }
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            *a += b;
        }
        for (a, b) in self.top.iter_mut().zip(other.top) {
            a.merge(b);
        }
    }
}
