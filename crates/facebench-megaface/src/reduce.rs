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
///
/// Rows are grouped by *membership pattern* (the set of sizes a row scores in): the devkit
/// lists give only a handful of distinct patterns, so the reducer keeps its counts, top scores
/// and histogram per pattern (one update per score, whatever the number of sizes) and sums
/// the patterns of each size at the end.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Per gallery row, 1 + its pattern index (0: the row scores in no size).
    pub pattern_of_row: Vec<u8>,
    /// Size bit set of each pattern.
    pub patterns: Vec<u8>,
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
    /// Per row, its index among the rows of its pattern.
    local: Vec<u32>,
    /// Per pattern: its rows, and the histogram sampling stride (every `stride`-th row of
    /// the pattern, by local index, is histogrammed).
    pub pattern_rows: Vec<usize>,
    pub stride: Vec<usize>,
    /// The CPU has AVX-512F (checked once here, used by the scans).
    simd: bool,
}

/// Rows per pattern that the histogram samples at least (all rows when there are fewer):
/// 8,192 rows x 3,530 probes = 29M impostor scores, enough for the ROC above FAR 1e-3.
pub(crate) const HIST_SAMPLE_ROWS: usize = 8192;

/// Interleaved copies of each histogram, so that runs of equal bins do not serialise on
/// one counter.
const HIST_WAYS: usize = 4;

impl Plan {
    /// Groups rows by membership bit set (`member[row]`, 0 = no size).
    pub fn new(
        member: &[u8],
        sizes: usize,
        offsets: Vec<usize>,
        sorted: Vec<f32>,
        order: Vec<usize>,
        keep: Vec<usize>,
        bins: usize,
    ) -> Plan {
        let mut index = [0u8; 256];
        let mut patterns = Vec::new();
        let mut pattern_rows: Vec<usize> = Vec::new();
        let mut local = Vec::with_capacity(member.len());
        let pattern_of_row = member
            .iter()
            .map(|&m| {
                if m != 0 && index[m as usize] == 0 {
                    patterns.push(m);
                    pattern_rows.push(0);
                    index[m as usize] = patterns.len() as u8;
                }
                let p = index[m as usize];
                if p > 0 {
                    local.push(pattern_rows[p as usize - 1] as u32);
                    pattern_rows[p as usize - 1] += 1;
                } else {
                    local.push(0);
                }
                p
            })
            .collect();
        let stride = pattern_rows.iter().map(|&r| (r / HIST_SAMPLE_ROWS).max(1)).collect();
        Plan {
            pattern_of_row,
            patterns,
            sizes,
            offsets,
            sorted,
            order,
            keep,
            bins,
            local,
            pattern_rows,
            stride,
            simd: avx512_available(),
        }
    }
    /// Slots per pattern: one more per probe than it has mates.
    fn slots(&self) -> usize {
        self.sorted.len() + self.offsets.len() - 1
    }
    /// Top scores a pattern keeps: the most any of its sizes needs.
    fn pattern_keep(&self, p: usize) -> usize {
        (0..self.sizes).filter(|b| self.patterns[p] >> b & 1 == 1).map(|b| self.keep[b]).max().unwrap_or(1)
    }
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// For every block of 16 consecutive scores of `seg` (the last one shorter) that holds a score
/// `> thr`, calls `hits(start, mask)` (bit b set iff `seg[start + b] > thr`), which returns the
/// threshold for the blocks after it. `simd`: the CPU has AVX-512F.
#[inline]
fn scan_above(seg: &[f32], thr: f32, simd: bool, mut hits: impl FnMut(usize, u32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the caller checked AVX-512F.
        return unsafe { scan_above_avx512(seg, thr, hits) };
    }
    let _ = simd;
    let mut thr = thr;
    for (c, chunk) in seg.chunks(16).enumerate() {
        let mask = chunk.iter().enumerate().fold(0u32, |m, (b, &s)| m | (((s > thr) as u32) << b));
        if mask != 0 {
            thr = hits(16 * c, mask);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scan_above_avx512(seg: &[f32], thr: f32, mut hits: impl FnMut(usize, u32) -> f32) {
    use std::arch::x86_64::*;
    let mut t = _mm512_set1_ps(thr);
    let p = seg.as_ptr();
    let full = seg.len() / 16 * 16;
    let mut j = 0;
    // Two blocks per test: one branch per 32 scores while nothing is found.
    while j + 32 <= full {
        let m0 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(p.add(j)), t);
        let m1 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(p.add(j + 16)), t);
        if (m0 | m1) != 0 {
            if m0 != 0 {
                t = _mm512_set1_ps(hits(j, m0 as u32));
            }
            // Re-test with the threshold the first block may have raised.
            let m1 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(p.add(j + 16)), t);
            if m1 != 0 {
                t = _mm512_set1_ps(hits(j + 16, m1 as u32));
            }
        }
        j += 32;
    }
    while j < seg.len() {
        let n = (seg.len() - j).min(16);
        let k: __mmask16 = if n == 16 { 0xFFFF } else { (1u16 << n) - 1 };
        let m = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(k, _mm512_maskz_loadu_ps(k, p.add(j)), t);
        if m != 0 {
            t = _mm512_set1_ps(hits(j, m as u32));
        }
        j += 16;
    }
}

/// Number of values of the ascending `mates` strictly below `s` (a score above the smallest):
/// most such scores sit just above the smallest mate scores, so a short scan from the bottom
/// usually ends early; the rest is counted 16 at a time.
#[inline(always)]
fn slot_of(mates: &[f32], s: f32, simd: bool) -> usize {
    const SHORT: usize = 4;
    match mates.iter().take(SHORT).position(|&t| t >= s) {
        Some(k) => k,
        None => SHORT.min(mates.len()) + count_below(&mates[SHORT.min(mates.len())..], s, simd),
    }
}

/// Number of values of `xs` strictly below `s`.
#[inline]
fn count_below(xs: &[f32], s: f32, simd: bool) -> usize {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the caller checked AVX-512F.
        return unsafe { count_below_avx512(xs, s) };
    }
    let _ = simd;
    xs.iter().map(|&t| (t < s) as usize).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn count_below_avx512(xs: &[f32], s: f32) -> usize {
    use std::arch::x86_64::*;
    let sv = _mm512_set1_ps(s);
    let mut n = 0;
    let mut j = 0;
    while j < xs.len() {
        let r = (xs.len() - j).min(16);
        let k: __mmask16 = if r == 16 { 0xFFFF } else { (1u16 << r) - 1 };
        let m = _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(k, _mm512_maskz_loadu_ps(k, xs.as_ptr().add(j)), sv);
        n += m.count_ones() as usize;
        j += 16;
    }
    n
}

/// The histogram bin of a score: `floor((s + 1) * bins / 2)` in f32, clamped to the bins.
/// Any non-decreasing function of the score would do: bin edges are then thresholds, so
/// histogram ROC points are exact points of a threshold rule.
#[inline(always)]
pub(crate) fn bin_of(s: f32, bins: usize) -> usize {
    // `as` saturates: negative values give 0.
    (((s + 1.0) * (bins as f32 * 0.5)) as usize).min(bins - 1)
}

/// Order-preserving map of f32 under `f32::total_cmp` to u32.
#[inline(always)]
fn total_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Cuts `buf` to its `k` largest values (as a multiset, under `total_cmp`), `0 < k < len`:
/// one counting pass over the top 16 bits of an order-preserving key finds the bucket of the
/// k-th largest, a selection inside that bucket finds its value, one pass keeps the rest.
/// Linear, and several times cheaper than a comparison-based selection over the millions of
/// values a 1M run keeps; it runs between steps, on one thread.
fn keep_largest(buf: &mut Vec<f32>, k: usize) {
    let bucket = |x: f32| (total_key(x) >> 16) as usize;
    let mut hist = vec![0usize; 1 << 16];
    for &x in buf.iter() {
        hist[bucket(x)] += 1;
    }
    // Bucket `b` holds the k-th largest: fewer than k values lie above it.
    let (mut b, mut above) = (hist.len() - 1, 0);
    while above + hist[b] < k {
        above += hist[b];
        b -= 1;
    }
    let mut inb: Vec<f32> = buf.iter().copied().filter(|&x| bucket(x) == b).collect();
    let r = k - above;
    inb.select_nth_unstable_by(r - 1, |x, y| y.total_cmp(x));
    let t = total_key(inb[r - 1]);
    let greater = above + inb.iter().filter(|&&x| total_key(x) > t).count();
    let mut ties = k - greater;
    buf.retain(|&x| {
        let kx = total_key(x);
        if kx == t && ties > 0 {
            ties -= 1;
            return true;
        }
        kx > t
    });
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
    #[inline(always)]
    fn offer(&mut self, s: f32) {
        if s > self.bound {
            self.push(s);
        }
    }
    #[inline(never)]
    fn push(&mut self, s: f32) {
        self.buf.push(s);
        if self.buf.len() >= 2 * self.keep.max(1) {
            self.cut();
        }
    }
    fn cut(&mut self) {
        let k = self.keep.max(1);
        if self.buf.len() > k {
            keep_largest(&mut self.buf, k);
        }
        if self.buf.len() == k {
            self.bound = self.buf.iter().copied().fold(f32::INFINITY, f32::min).max(self.bound);
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
    /// at or below their minimum can enter the final top set. Cuts the buffer in place when
    /// the bound is missing or the buffer has grown by a quarter since the last cut (a cut
    /// costs a selection over the whole buffer, which is millions of values at 1M).
    fn seed_bound(&mut self) -> f32 {
        let k = self.keep.max(1);
        if self.buf.len() >= k && (self.bound == f32::NEG_INFINITY || self.buf.len() >= k + k / 4) {
            self.cut();
        }
        self.bound
    }
}

/// Partial state of one pass (see the module docs). `col0` is the absolute gallery row of
/// the first column of the gallery slice being scored.
#[derive(Debug, Clone)]
pub(crate) struct SizeReducer<'a> {
    plan: &'a Plan,
    col0: usize,
    /// `[pattern][slot]`: slot `p` of probe `q` (at `offsets[q] + q + p`) counts the scores
    /// that exceed exactly the `p` smallest mate scores of `q`.
    slots: Vec<u32>,
    /// Per pattern.
    top: Vec<TopScores>,
    /// `[pattern][way][bin]`.
    hist: Vec<u64>,
}

impl<'a> SizeReducer<'a> {
    pub fn new(plan: &'a Plan) -> Self {
        let top = (0..plan.patterns.len()).map(|p| TopScores::new(plan.pattern_keep(p), f32::NEG_INFINITY)).collect();
        Self::with_top(plan, 0, top)
    }

    fn with_top(plan: &'a Plan, col0: usize, top: Vec<TopScores>) -> Self {
        let np = plan.patterns.len();
        SizeReducer { plan, col0, slots: vec![0; np * plan.slots()], top, hist: vec![0; np * HIST_WAYS * plan.bins] }
    }

    /// An empty partial for the gallery slice starting at row `col0`, whose top-score
    /// buffers start from this state's bounds (so partials keep little once warmed up).
    pub fn fork_at(&mut self, col0: usize) -> Self {
        let top = self.top.iter_mut().map(|t| TopScores::new(t.keep, t.seed_bound())).collect();
        Self::with_top(self.plan, col0, top)
    }

    fn patterns_of(&self, b: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.plan.patterns.len()).filter(move |&p| self.plan.patterns[p] >> b & 1 == 1)
    }

    /// Per size, per mate pair: the number of scoring distractors strictly above the mate score.
    pub fn counts(&self) -> Vec<Vec<u64>> {
        let p = self.plan;
        let per = p.slots();
        (0..p.sizes)
            .map(|b| {
                let mut slots = vec![0u64; per];
                for pat in self.patterns_of(b) {
                    for (a, &c) in slots.iter_mut().zip(&self.slots[pat * per..(pat + 1) * per]) {
                        *a += c as u64;
                    }
                }
                let mut out = vec![0u64; p.sorted.len()];
                for q in 0..p.offsets.len() - 1 {
                    let (a, e) = (p.offsets[q], p.offsets[q + 1]);
                    let s = &slots[a + q..=e + q];
                    let mut above = 0u64;
                    for r in (0..e - a).rev() {
                        above += s[r + 1];
                        out[p.order[a + r]] = above;
                    }
                }
                out
            })
            .collect()
    }

    /// The largest impostor scores of size `b` (at most its `keep`), largest first.
    pub fn top_of(&self, b: usize) -> Vec<f32> {
        let mut t = TopScores::new(self.plan.keep[b], f32::NEG_INFINITY);
        for p in self.patterns_of(b) {
            t.merge(self.top[p].clone());
        }
        t.into_sorted()
    }

    /// The impostor-score histogram of size `b`, each pattern's sampled counts scaled up to
    /// all its rows, and whether any sampling happened (false: the counts are exact).
    pub fn hist_of(&self, b: usize) -> (Vec<f64>, bool) {
        let plan = self.plan;
        let bins = plan.bins;
        let mut h = vec![0f64; bins];
        let mut sampled = false;
        for p in self.patterns_of(b) {
            let st = plan.stride[p];
            let taken = plan.pattern_rows[p].div_ceil(st);
            let scale = plan.pattern_rows[p] as f64 / taken as f64;
            sampled |= st > 1;
            for w in 0..HIST_WAYS {
                let src = &self.hist[(p * HIST_WAYS + w) * bins..(p * HIST_WAYS + w + 1) * bins];
                h.iter_mut().zip(src).for_each(|(a, &c)| *a += c as f64 * scale);
            }
        }
        (h, sampled)
    }
}

impl SizeReducer<'_> {
    /// One score of query `q` in pattern `pat` that beats its smallest mate score or the
    /// pattern's top-score bound.
    #[inline(never)]
    fn hit(&mut self, q: usize, pat: usize, s: f32, min: f32) {
        let p = self.plan;
        if s > min {
            let (a, e) = (p.offsets[q], p.offsets[q + 1]);
            // The slot is the number of mate scores strictly below `s`.
            let slot = count_below(&p.sorted[a..e], s, p.simd);
            self.slots[pat * p.slots() + a + q + slot] += 1;
        }
        self.top[pat].offer(s);
    }

    /// Tiles with excluded columns (not produced by this crate's passes, but part of the
    /// reducer contract).
    fn consume_general(&mut self, tile: &Tile<'_>, pats: &[u8], excluded: &[bool]) {
        let bins = self.plan.bins;
        for i in 0..tile.rows() {
            let q = tile.q0() + i;
            let p = self.plan;
            let min = p.sorted[p.offsets[q]..p.offsets[q + 1]].first().copied().unwrap_or(f32::INFINITY);
            for (j, (&s, &pat)) in tile.row(i).iter().zip(pats).enumerate() {
                if pat == 0 || excluded[j] {
                    continue;
                }
                let pat = pat as usize - 1;
                if bins > 0 && (p.local[self.col0 + tile.g0() + j] as usize).is_multiple_of(p.stride[pat]) {
                    self.hist[(pat * HIST_WAYS + (j % HIST_WAYS)) * bins + bin_of(s, bins)] += 1;
                }
                self.hit(q, pat, s, min);
            }
        }
    }
}

impl Reducer for SizeReducer<'_> {
    /// Called by the scorer once per work item: copies the bounds, never the buffers.
    fn fork(&self) -> Self {
        let top = self.top.iter().map(|t| TopScores::new(t.keep, t.bound)).collect();
        Self::with_top(self.plan, self.col0, top)
    }

    fn consume(&mut self, tile: &Tile<'_>) {
        let p = self.plan;
        let g0 = self.col0 + tile.g0();
        let pats = &p.pattern_of_row[g0..g0 + tile.cols()];
        if let Some(excluded) = tile.excluded() {
            return self.consume_general(tile, pats, excluded);
        }
        // Runs of columns with one membership pattern (long runs: lists are read in order).
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        let mut j = 0;
        while j < pats.len() {
            let k = j + pats[j..].iter().position(|&x| x != pats[j]).unwrap_or(pats.len() - j);
            if pats[j] != 0 {
                runs.push((j, k, pats[j] as usize - 1));
            }
            j = k;
        }
        let (bins, per) = (p.bins, p.slots());
        for i in 0..tile.rows() {
            let q = tile.q0() + i;
            let (a, e) = (p.offsets[q], p.offsets[q + 1]);
            let mates = &p.sorted[a..e];
            let min = mates.first().copied().unwrap_or(f32::INFINITY);
            let row = tile.row(i);
            for &(j0, j1, pat) in &runs {
                let seg = &row[j0..j1];
                if bins > 0 {
                    let h = &mut self.hist[pat * HIST_WAYS * bins..(pat + 1) * HIST_WAYS * bins];
                    let st = p.stride[pat];
                    let first = (st - p.local[g0 + j0] as usize % st) % st;
                    for (c, &s) in seg.iter().skip(first).step_by(st).enumerate() {
                        h[(c % HIST_WAYS) * bins + bin_of(s, bins)] += 1;
                    }
                }
                // Scores above the smallest mate score or the top-score bound are rare:
                // test 16 at a time, handle hits one by one.
                // (What `hit` does, with the query's slots and mates looked up once.)
                let slots = &mut self.slots[pat * per + a + q..=pat * per + e + q];
                let top = &mut self.top[pat];
                scan_above(seg, min.min(top.bound), p.simd, |j0, mask| {
                    let mut m = mask;
                    while m != 0 {
                        let s = seg[j0 + m.trailing_zeros() as usize];
                        if s > min {
                            slots[slot_of(mates, s, p.simd)] += 1;
                        }
                        top.offer(s);
                        m &= m - 1;
                    }
                    min.min(top.bound)
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_largest_equals_sorting() {
        let mut rng = facebench_core::rng::SplitMix64::new(9);
        for n in [2, 10, 1000, 70_000] {
            // Coarse values (many ties), signed zeros, and a narrow range in one bucket.
            let vals: Vec<f32> = (0..n)
                .map(|i| match i % 4 {
                    0 => (rng.uniform(-1.0, 1.0) * 8.0).round() as f32 / 8.0,
                    1 => [0.0, -0.0][i % 8 / 4],
                    2 => 0.5 + rng.uniform(0.0, 1e-4) as f32,
                    _ => rng.normal() as f32,
                })
                .collect();
            for k in [1, 2, n / 3, n / 2, n - 1].into_iter().filter(|&k| k > 0 && k < n) {
                let mut buf = vals.clone();
                keep_largest(&mut buf, k);
                let mut want = vals.clone();
                want.sort_by(|a, b| b.total_cmp(a));
                want.truncate(k);
                buf.sort_by(|a, b| b.total_cmp(a));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&buf), bits(&want), "n {n} k {k}");
            }
        }
    }

    /// The AVX-512 scans report the same blocks, masks and counts as the scalar ones,
    /// including tails shorter than a block and thresholds raised by the callback.
    #[test]
    fn simd_scans_match_scalar() {
        if !avx512_available() {
            eprintln!("no AVX-512F: scalar scans only");
            return;
        }
        let mut rng = facebench_core::rng::SplitMix64::new(5);
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 47, 64, 100, 517] {
            let seg: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            for thr in [-2.0, 0.0, 0.5, 0.9, 2.0] {
                let run = |simd| {
                    let mut calls = Vec::new();
                    let mut t = thr;
                    scan_above(&seg, thr, simd, |j, m| {
                        calls.push((j, m));
                        // Raise the threshold as a filling top-k buffer would.
                        t = (t + 0.1f32).min(1.5);
                        t
                    });
                    calls
                };
                let scalar = run(false);
                assert_eq!(run(true), scalar, "len {len} thr {thr}");
                let mut t = thr;
                for &(j, m) in &scalar {
                    for (b, &s) in seg[j..(j + 16).min(len)].iter().enumerate() {
                        assert_eq!(m >> b & 1 == 1, s > t, "len {len} thr {thr} at {}", j + b);
                    }
                    t = (t + 0.1f32).min(1.5);
                }
                let mut sorted = seg.clone();
                sorted.sort_by(f32::total_cmp);
                for &s in seg.iter().chain(&[thr]) {
                    let below = seg.iter().filter(|&&x| x < s).count();
                    assert_eq!(slot_of(&sorted, s, true), below);
                    assert_eq!(slot_of(&sorted, s, false), below);
                }
                for &s in &seg {
                    assert_eq!(count_below(&seg, s, true), count_below(&seg, s, false));
                    assert_eq!(count_below(&seg, s, false), seg.iter().filter(|&&x| x < s).count());
                }
            }
        }
    }
}
