//! Blocked scoring against a naive reference: the naive side scores every pair with `dot`
//! (whose order `gemm_block` reproduces bit for bit, see tests/kernel.rs), then reduces by
//! sorting the full score matrix. Results must be identical for every block size and thread
//! count, including on data with many exact ties.

use std::sync::Arc;

use facebench_score::{
    dot, score_blocked, BlockConfig, CountAbove, GalleryMask, GlobalTopK, Histogram, Hit, Masked, Matrix, PairHit,
    Reducer, ScoreError, Tile, TopKPerQuery,
};
use proptest::prelude::*;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

/// The full score matrix, row-major, by the reference `dot`.
fn naive_scores(q: Matrix<'_>, g: Matrix<'_>) -> Vec<f32> {
    (0..q.rows()).flat_map(|i| (0..g.rows()).map(move |j| dot(q.row(i), g.row(j)))).collect()
}

fn better(a: (f32, usize, usize), b: (f32, usize, usize)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2)))
}

fn naive_topk(s: &[f32], m: usize, n: usize, k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<Vec<Hit>> {
    (0..m)
        .map(|i| {
            let mut row: Vec<(f32, usize, usize)> = (0..n).filter(|&j| keep(j)).map(|j| (s[i * n + j], 0, j)).collect();
            row.sort_by(|a, b| better(*a, *b));
            row.into_iter().take(k).map(|(score, _, gallery)| Hit { gallery, score }).collect()
        })
        .collect()
}

fn naive_global(s: &[f32], m: usize, n: usize, k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<PairHit> {
    let mut all: Vec<(f32, usize, usize)> =
        (0..m).flat_map(|i| (0..n).filter(|&j| keep(j)).map(move |j| (s[i * n + j], i, j))).collect();
    all.sort_by(|a, b| better(*a, *b));
    all.into_iter().take(k).map(|(score, query, gallery)| PairHit { query, gallery, score }).collect()
}

fn naive_counts(s: &[f32], n: usize, offsets: &[usize], th: &[f32], keep: &dyn Fn(usize) -> bool) -> Vec<u64> {
    let mut out = vec![0; th.len()];
    for q in 0..offsets.len() - 1 {
        for t in offsets[q]..offsets[q + 1] {
            out[t] = (0..n).filter(|&j| keep(j) && s[q * n + j] > th[t]).count() as u64;
        }
    }
    out
}

fn naive_hist(s: &[f32], n: usize, h: &Histogram, keep: &dyn Fn(usize) -> bool) -> Vec<u64> {
    let mut c = vec![0u64; h.counts().len()];
    for (idx, &v) in s.iter().enumerate() {
        if keep(idx % n) {
            c[h.bin_of(v)] += 1;
        }
    }
    c
}

/// A problem: matrices, thresholds, and masks derived from the seed.
#[derive(Debug, Clone)]
struct Case {
    m: usize,
    n: usize,
    d: usize,
    q: Vec<f32>,
    g: Vec<f32>,
    k: usize,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let dims = prop::sample::select(vec![1usize, 2, 3, 7, 64, 513]);
    let sizes = prop::sample::select(vec![0usize, 1, 2, 5, 8, 9, 17, 33]);
    // Values on a coarse grid give many exactly equal scores (tie-breaking is exercised);
    // arbitrary values give distinct ones.
    let coarse = any::<bool>();
    (dims, sizes.clone(), sizes, coarse, 0usize..6).prop_flat_map(|(d, m, n, coarse, k)| {
        let val = if coarse { (-2i32..=2).prop_map(|v| v as f32 * 0.5).boxed() } else { (-1.0f32..1.0).boxed() };
        (prop::collection::vec(val.clone(), m * d), prop::collection::vec(val, n * d)).prop_map(move |(q, g)| Case {
            m,
            n,
            d,
            q,
            g,
            k,
        })
    })
}

/// Thresholds per query drawn from its own scores (so "strictly greater" sees equal values).
fn thresholds(s: &[f32], m: usize, n: usize) -> (Vec<usize>, Vec<f32>) {
    let mut offsets = vec![0];
    let mut th = Vec::new();
    for i in 0..m {
        for t in 0..(i % 4) {
            th.push(if n == 0 { 0.25 * t as f32 } else { s[i * n + (t * 7 + i) % n] });
        }
        offsets.push(th.len());
    }
    (offsets, th)
}

type All = (TopKPerQuery, CountAbove, GlobalTopK, Histogram, Masked<TopKPerQuery>, Masked<(CountAbove, Histogram)>);

fn all_reducers(c: &Case, offsets: &[usize], th: &[f32], mask: &GalleryMask) -> All {
    (
        TopKPerQuery::new(c.m, c.k),
        CountAbove::new(offsets, th).unwrap(),
        GlobalTopK::new(c.k * 3),
        Histogram::new(-1.0, 1.0, 7).unwrap(),
        Masked::new(TopKPerQuery::new(c.m, c.k), mask.clone()),
        Masked::new((CountAbove::new(offsets, th).unwrap(), Histogram::new(-0.5, 0.5, 4).unwrap()), mask.clone()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn blocked_equals_naive_for_all_tilings_and_threads(c in case_strategy(), qb in 1usize..12, gb in 1usize..40) {
        let q = Matrix::new(&c.q, c.m, c.d).unwrap();
        let g = Matrix::new(&c.g, c.n, c.d).unwrap();
        let s = naive_scores(q, g);
        let (offsets, th) = thresholds(&s, c.m, c.n);
        // Mask: the middle part of the gallery, minus every third column.
        let range = (c.n / 4)..(c.n - c.n / 5);
        let excluded: Arc<[bool]> = (0..c.n).map(|j| j % 3 == 1).collect();
        let mask = GalleryMask::range(range.clone()).with_excluded(excluded);
        let keep_all = |_: usize| true;
        let keep_masked = |j: usize| range.contains(&j) && j % 3 != 1;

        let want_topk = naive_topk(&s, c.m, c.n, c.k, &keep_all);
        let want_counts = naive_counts(&s, c.n, &offsets, &th, &keep_all);
        let want_global = naive_global(&s, c.m, c.n, c.k * 3, &keep_all);
        let h7 = Histogram::new(-1.0, 1.0, 7).unwrap();
        let h4 = Histogram::new(-0.5, 0.5, 4).unwrap();
        let want_hist = naive_hist(&s, c.n.max(1), &h7, &keep_all);
        let want_mtopk = naive_topk(&s, c.m, c.n, c.k, &keep_masked);
        let want_mcounts = naive_counts(&s, c.n, &offsets, &th, &keep_masked);
        let want_mhist = naive_hist(&s, c.n.max(1), &h4, &keep_masked);

        for (threads, cfg) in [
            (1, BlockConfig { query_block: qb, gallery_block: gb }),
            (2, BlockConfig { query_block: qb + 1, gallery_block: gb + 3 }),
            (3, BlockConfig { query_block: 1, gallery_block: 1 }),
            (3, BlockConfig::default()),
        ] {
            let r = pool(threads)
                .install(|| score_blocked(q, g, cfg, all_reducers(&c, &offsets, &th, &mask)))
                .unwrap();
            let (topk, counts, global, hist, mtopk, mpair) = r;
            let (mcounts, mhist) = mpair.into_inner();
            prop_assert_eq!(&topk.into_hits(), &want_topk, "top-k, {} threads, {:?}", threads, cfg);
            prop_assert_eq!(&counts.counts(), &want_counts, "counts, {} threads, {:?}", threads, cfg);
            prop_assert_eq!(&global.into_hits(), &want_global, "global top-k, {} threads, {:?}", threads, cfg);
            prop_assert_eq!(&hist.counts(), &want_hist, "histogram, {} threads, {:?}", threads, cfg);
            prop_assert_eq!(hist.total(), (c.m * c.n) as u64);
            prop_assert_eq!(&mtopk.into_inner().into_hits(), &want_mtopk, "masked top-k");
            prop_assert_eq!(&mcounts.counts(), &want_mcounts, "masked counts");
            prop_assert_eq!(&mhist.counts(), &want_mhist, "masked histogram");
        }
    }
}

/// Several distractor-set sizes in one pass: a Vec of reducers masked to nested prefixes.
#[test]
fn vec_of_masked_reducers_matches_separate_runs() {
    let (m, n, d) = (6, 50, 5);
    let q: Vec<f32> = (0..m * d).map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0).collect();
    let g: Vec<f32> = (0..n * d).map(|i| ((i * 53 % 13) as f32 - 6.0) / 4.0).collect();
    let (qm, gm) = (Matrix::new(&q, m, d).unwrap(), Matrix::new(&g, n, d).unwrap());
    let sizes = [1usize, 10, 25, 50];
    let together: Vec<Masked<TopKPerQuery>> =
        sizes.iter().map(|&s| Masked::new(TopKPerQuery::new(m, 3), GalleryMask::range(0..s))).collect();
    let together =
        pool(2).install(|| score_blocked(qm, gm, BlockConfig { query_block: 4, gallery_block: 7 }, together)).unwrap();
    for (r, &s) in together.into_iter().zip(&sizes) {
        let alone = score_blocked(qm, gm.slice_rows(0..s), BlockConfig::default(), TopKPerQuery::new(m, 3)).unwrap();
        assert_eq!(r.into_inner().into_hits(), alone.into_hits(), "prefix {s}");
    }
}

fn tile_a() -> Vec<f32> {
    // 2 queries x 4 gallery items, with ties inside and across rows.
    vec![0.5, 0.9, 0.5, 0.9, /* q1 */ 0.9, 0.1, 0.9, 0.5]
}

#[test]
fn topk_ties_prefer_smaller_gallery_index_in_any_merge_order() {
    let s = tile_a();
    let (l, r) = ([s[0], s[1], s[4], s[5]], [s[2], s[3], s[6], s[7]]);
    let left = Tile::new(0, 0, 2, 2, &l);
    let right = Tile::new(0, 2, 2, 2, &r);
    let run = |first: &Tile<'_>, second: &Tile<'_>, split: bool| {
        let mut a = TopKPerQuery::new(2, 3);
        a.consume(first);
        if split {
            let mut b = a.fork();
            b.consume(second);
            b.merge(a);
            b
        } else {
            a.consume(second);
            a
        }
    };
    let want = vec![
        vec![Hit { gallery: 1, score: 0.9 }, Hit { gallery: 3, score: 0.9 }, Hit { gallery: 0, score: 0.5 }],
        vec![Hit { gallery: 0, score: 0.9 }, Hit { gallery: 2, score: 0.9 }, Hit { gallery: 3, score: 0.5 }],
    ];
    for split in [false, true] {
        assert_eq!(run(&left, &right, split).into_hits(), want);
        assert_eq!(run(&right, &left, split).into_hits(), want);
    }
}

#[test]
fn global_topk_ties_prefer_smaller_query_then_gallery() {
    let s = tile_a();
    let mut r = GlobalTopK::new(3);
    r.consume(&Tile::new(5, 10, 2, 4, &s));
    let want = vec![
        PairHit { query: 5, gallery: 11, score: 0.9 },
        PairHit { query: 5, gallery: 13, score: 0.9 },
        PairHit { query: 6, gallery: 10, score: 0.9 },
    ];
    assert_eq!(r.into_hits(), want);
}

#[test]
fn count_above_is_strict_and_keeps_caller_order() {
    let s = tile_a();
    // Query 0 thresholds 0.9, 0.5, 0.1 (given unsorted); query 1 threshold 0.5.
    let mut r = CountAbove::new(&[0, 3, 4], &[0.9, 0.5, 0.1, 0.5]).unwrap();
    let (a, b) = (Tile::new(0, 0, 2, 4, &s), Tile::new(0, 4, 2, 4, &s));
    r.consume(&a);
    let mut other = r.fork();
    other.consume(&b);
    r.merge(other);
    // Each score counted twice (two tiles): q0 scores {0.5,0.9,0.5,0.9}: >0.9: 0, >0.5: 2, >0.1: 4.
    assert_eq!(r.counts(), vec![0, 4, 8, 4]);
    // MegaFace rank: one threshold per query.
    let mut single = CountAbove::single(&[0.5, 0.9]).unwrap();
    single.consume(&a);
    assert_eq!(single.counts(), vec![2, 0]);
}

#[test]
fn histogram_clamps_and_puts_hi_in_last_bin() {
    let mut h = Histogram::new(0.0, 1.0, 4).unwrap();
    h.consume(&Tile::new(0, 0, 1, 7, &[-3.0, 0.0, 0.25, 0.2499, 0.75, 1.0, 9.0]));
    // bins [0, .25) [.25, .5) [.5, .75) [.75, 1]: -3, 0, .2499 | .25 | - | .75, 1, 9
    assert_eq!(h.counts(), vec![3, 1, 0, 3]);
    assert_eq!(h.total(), 7);
}

#[test]
fn masked_sees_only_its_columns_with_absolute_indices() {
    let s = tile_a();
    let excluded: Arc<[bool]> = vec![false, false, false, false, true, false, false, false].into();
    let mut r = Masked::new(TopKPerQuery::new(2, 2), GalleryMask::range(3..6).with_excluded(excluded));
    r.consume(&Tile::new(0, 0, 2, 4, &s)); // only column 3 is in range
    r.consume(&Tile::new(0, 4, 2, 4, &s)); // columns 4 (excluded) and 5
    assert_eq!(
        r.into_inner().into_hits(),
        vec![
            vec![Hit { gallery: 3, score: 0.9 }, Hit { gallery: 5, score: 0.9 }],
            vec![Hit { gallery: 3, score: 0.5 }, Hit { gallery: 5, score: 0.1 }],
        ]
    );
}

#[test]
fn bad_input_gives_errors_not_panics() {
    let v = vec![0.0f32; 6];
    assert_eq!(Matrix::new(&v, 4, 2).unwrap_err(), ScoreError::Shape { len: 6, rows: 4, dim: 2 });
    assert_eq!(Matrix::new(&v, 6, 0).unwrap_err(), ScoreError::ZeroDim);
    let mut w = v.clone();
    w[5] = f32::NAN;
    let e = Matrix::new(&w, 3, 2).unwrap_err();
    assert!(e.to_string().contains("row 2, column 1"), "{e}");
    // The first of several non-finite values, past the first block of the parallel check.
    let mut big = vec![0.0f32; 300_000];
    (big[200_003], big[250_000]) = (f32::INFINITY, f32::NAN);
    let e = Matrix::new(&big, 100_000, 3).unwrap_err();
    assert_eq!(e, ScoreError::NonFinite { row: 66_667, col: 2, value: f32::INFINITY });
    let (a, b) = (Matrix::new(&v, 3, 2).unwrap(), Matrix::new(&v, 2, 3).unwrap());
    assert!(matches!(
        score_blocked(a, b, BlockConfig::default(), Histogram::new(0.0, 1.0, 2).unwrap()),
        Err(ScoreError::DimMismatch { .. })
    ));
    assert!(matches!(
        score_blocked(a, a, BlockConfig { query_block: 0, gallery_block: 4 }, GlobalTopK::new(1)),
        Err(ScoreError::ZeroBlock { .. })
    ));
    let e = score_blocked(a, a, BlockConfig::default(), TopKPerQuery::new(4, 1)).unwrap_err();
    assert!(e.to_string().contains("built for 4 queries"), "{e}");
    let e = score_blocked(a, a, BlockConfig::default(), Masked::new(GlobalTopK::new(1), GalleryMask::range(0..9)))
        .unwrap_err();
    assert!(e.to_string().contains("0..9"), "{e}");
    assert!(CountAbove::new(&[0, 2], &[0.1]).is_err());
    assert!(CountAbove::new(&[0, 1], &[f32::INFINITY]).is_err());
    assert!(Histogram::new(1.0, 1.0, 3).is_err());
    let e = facebench_score::score_pairs(a, a, &[(0, 1), (3, 0)]).unwrap_err();
    assert_eq!(e, ScoreError::PairOutOfRange { index: 1, a: 3, b: 0, a_rows: 3, b_rows: 3 });
}
